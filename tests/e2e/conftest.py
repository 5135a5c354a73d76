"""Browser tests: a live uvicorn server on the test service's database, Debian's Chromium.

The session ``service`` fixture (tests/conftest.py) runs the worker; this module adds a real
HTTP server for the same settings (the API's TestClient is in-process only) and a headless
Chromium driven by Playwright. Browsers are never downloaded: ``executable_path`` is the
``chromium`` binary from apt.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import Service

OUTPUT = Path(os.environ.get("CERTAUTOPILOT_TEST_OUTPUT", "test-output")).resolve() / "e2e"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_url(service: Service) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        create_app(service.settings), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per module: Playwright's sync API keeps an asyncio loop running in the
    main thread while it is open, which would break later tests that call asyncio.run."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class WebUser:
    email: str
    password: str = PASSWORD


def web_user(
    service: Service, email: str, *, project: str | None = None, role: str = ""
) -> WebUser:
    """A user with a password; added to ``project`` in ``role`` through the API."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = auth.ensure_user(session, email=email)
            auth.set_password(user, PASSWORD)
    finally:
        engine.dispose()
    if project and role:
        service.ok("POST", f"/projects/{project}/members", 201, json={"email": email, "role": role})
    return WebUser(email)


@pytest.fixture
def new_page(browser: Any, live_url: str) -> Iterator[Any]:
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(base_url=live_url, viewport={"width": 1366, "height": 900})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Any, user: WebUser, *, goto: bool = True) -> None:
    if goto:
        page.goto("/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def screenshot(page: Any, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
