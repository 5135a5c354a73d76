"""A database that cannot take a write in time answers 503 (nothing written), never 500."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.db.sqlite_writes import SerializedConnection


def test_a_held_write_lock_gives_503_with_retry_after_then_the_request_succeeds(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env(
        {
            **os.environ,
            "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
            "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "CERTAUTOPILOT_SQLITE_BUSY_TIMEOUT_SECONDS": "0.5",
        }
    )
    upgrade(settings)
    engine = make_engine(settings)
    with transaction(make_sessionmaker(engine)) as session:
        admin = auth.ensure_user(session, email="a@example.test", instance_admin=True)
        token = tokens.create_token(session, user=admin)
    engine.dispose()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"slug": "busy", "name": "Busy"}
    with TestClient(create_app(settings)) as client:
        # Another writer of this process holds a long write transaction.
        holder = sqlite3.connect(
            str(tmp_path / "db.sqlite"), timeout=0.5, factory=SerializedConnection
        )
        holder.execute("UPDATE users SET email = email")
        try:
            refused = client.post("/api/v1/projects", json=body, headers=headers)
        finally:
            holder.rollback()
            holder.close()
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["retry-after"] == "2"
        assert "nothing was changed" in refused.json()["detail"]
        assert client.get("/api/v1/projects/busy", headers=headers).status_code == 404

        created = client.post("/api/v1/projects", json=body, headers=headers)
        assert created.status_code == 201, created.text
