"""Browser tests: a live uvicorn server on the test service's database, Debian's Chromium.

The session ``service`` fixture (tests/conftest.py) runs the worker; this module adds a real
HTTP server for the same settings (the API's TestClient is in-process only) and a headless
Chromium driven by Playwright. Browsers are never downloaded: ``executable_path`` is the
``chromium`` binary from apt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.deps import get_clock
from tests.conftest import Service
from tests.integration.live_server import serve_in_thread

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


@pytest.fixture(scope="session")
def live_url(service: Service) -> Iterator[str]:
    with serve_in_thread(create_app(service.settings)) as port:
        yield f"http://127.0.0.1:{port}"


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


#: Reports every Content-Security-Policy violation to the test (an init script runs outside
#: the page's CSP, before the page's own scripts).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportCspViolation(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} in ${e.documentURI}` +
      (e.sourceFile ? ` (${e.sourceFile}:${e.lineNumber})` : "")
  );
});
"""


@pytest.fixture
def new_page(browser: Any, live_url: str) -> Iterator[Any]:
    """Pages in fresh browser contexts. Any Content-Security-Policy violation on any of
    them (an inline script, handler or style; a script or style from elsewhere) fails the
    test: the event and Chromium's console error are both caught."""
    contexts: list[Any] = []
    violations: list[str] = []

    def make() -> Any:
        context = browser.new_context(base_url=live_url, viewport={"width": 1366, "height": 900})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return watch_csp(context, violations).new_page()

    yield make
    for context in contexts:
        context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))


def watch_csp(context: Any, violations: list[str]) -> Any:
    """Appends each CSP violation on ``context``'s pages to ``violations``; returns it."""

    def console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(message.text)

    def report(text: str) -> None:
        violations.append(text)

    context.expose_function("__reportCspViolation", report)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    context.on("console", console)
    return context


def sign_in(page: Any, user: WebUser, *, goto: bool = True) -> None:
    if goto:
        page.goto("/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def go(page: Any, target: Any) -> None:
    """Click something that loads a new page and return once that page has loaded, so what
    is read next (``count()`` and ``all_inner_texts()`` do not wait) is the new page, not the
    one being left."""
    with page.expect_navigation():
        target.click()


def screenshot(page: Any, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class FakeClock:
    """The request handlers' clock (``deps.get_clock``), moved by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(service: Service) -> Iterator[FakeClock]:
    fake = FakeClock(datetime.now(UTC))
    app = service.client.app
    app.dependency_overrides[get_clock] = lambda: fake  # type: ignore[attr-defined]
    try:
        yield fake
    finally:
        app.dependency_overrides.pop(get_clock, None)  # type: ignore[attr-defined]
