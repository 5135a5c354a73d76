"""A real HTTP server (uvicorn on a free port, in a thread) on a fresh data dir, for tests
that must see what goes over the wire: headers, early answers, connection handling."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction

ADMIN = "admin@example.test"


@dataclass(frozen=True)
class Live:
    port: int
    token: str  # an instance admin's API token
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def prepared_settings(database_url: str, data_dir: Path, **env: str) -> Settings:
    settings = Settings.from_env(
        {
            # This process's own settings first (the tests' allow list of private networks,
            # which create_app installs process-wide), then this server's.
            **os.environ,
            "CERTAUTOPILOT_DATA_DIR": str(data_dir),
            "CERTAUTOPILOT_DATABASE_URL": database_url,
            **{"CERTAUTOPILOT_" + k: v for k, v in env.items()},
        }
    )
    upgrade(settings)
    return settings


def admin_token(settings: Settings, password: str | None = None) -> str:
    engine = make_engine(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            admin = auth.ensure_user(session, email=ADMIN, instance_admin=True)
            if password:
                auth.set_password(admin, password)
            return tokens.create_token(session, user=admin)
    finally:
        engine.dispose()


@contextmanager
def live_server(
    database_url: str,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    password: str | None = None,
    **uvicorn_options: Any,
) -> Iterator[Live]:
    """``env``: more ``CERTAUTOPILOT_*`` settings (without the prefix); ``uvicorn_options``
    go to ``uvicorn.Config`` (e.g. ``forwarded_allow_ips``), whose defaults are those
    ``certautopilot serve`` runs with."""
    settings = prepared_settings(database_url, data_dir, **(env or {}))
    token = admin_token(settings, password)
    with serve_in_thread(create_app(settings), **uvicorn_options) as port:
        yield Live(port, token, settings)


@contextmanager
def serve_in_thread(app: Any, **uvicorn_options: Any) -> Iterator[int]:
    """uvicorn serving ``app`` on a free port of 127.0.0.1 in a thread, once it listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
