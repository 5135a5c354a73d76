"""The sign-in throttle over HTTP (issue #12, item 6): 429 with Retry-After and a note on
the page, per account and per client address, lifted by time (a moved clock, no sleep);
an unknown e-mail costs an argon2 verification like a known one."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from certautopilot.auth import service as auth
from tests.conftest import Project, Service
from tests.e2e.conftest import PASSWORD, FakeClock, web_user
from tests.e2e.test_web_session import _csrf

_hosts = (f"198.51.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def _client(service: Service, address: str | None = None) -> TestClient:
    """A browser at its own client address, so the address counts of tests do not mix."""
    return TestClient(service.client.app, client=(address or next(_hosts), 50000))


def _try(client: TestClient, email: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf": _csrf(page.text), "next": "/"},
        follow_redirects=False,
    )


def _email(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}@example.test"


def test_five_wrong_passwords_lock_the_account_then_time_lifts_it(
    service: Service, project: Project, clock: FakeClock
) -> None:
    user = web_user(service, _email("thr"), project=project.slug, role="viewer")
    client = _client(service)
    for _ in range(4):
        wrong = _try(client, user.email, "not the password")
        assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
    fifth = _try(client, user.email, "not the password")
    assert fifth.status_code == 429 and fifth.headers["retry-after"] == "30"
    assert "Too many attempts; try again in 30 seconds." in fifth.text

    # Locked: even the right password is refused, from another address too (per account).
    clock.advance(seconds=10)
    right = _try(_client(service), user.email, PASSWORD)
    assert right.status_code == 429 and right.headers["retry-after"] == "20"
    assert "try again in 20 seconds" in right.text
    assert "cap_session" not in right.headers.get("set-cookie", "")

    clock.advance(seconds=21)  # the lock passed: the right password signs in
    ok = _try(client, user.email, PASSWORD)
    assert ok.status_code == 303 and "cap_session=" in ok.headers["set-cookie"]
    # ... and the account's count started over: one failure is a plain 401 again.
    assert _try(client, user.email, "wrong again").status_code == 401
    for _ in range(3):
        _try(client, user.email, "wrong again")
    assert _try(client, user.email, "wrong again").headers["retry-after"] == "30"


def test_the_lockout_doubles_and_unknown_emails_are_locked_the_same(
    service: Service, clock: FakeClock
) -> None:
    client = _client(service)
    nobody = _email("nobody")  # no such user: locked all the same, nothing tells them apart
    for _ in range(5):
        last = _try(client, nobody, "guess")
    assert last.status_code == 429 and last.headers["retry-after"] == "30"
    clock.advance(seconds=31)
    again = _try(client, nobody, "guess")
    assert again.status_code == 429 and again.headers["retry-after"] == "60"
    clock.advance(seconds=61)
    assert _try(client, nobody, "guess").headers["retry-after"] == "120"


def test_twenty_failures_from_one_address_lock_that_address_only(
    service: Service, project: Project, clock: FakeClock
) -> None:
    user = web_user(service, _email("addr"), project=project.slug, role="viewer")
    stuffing = _client(service)
    answers = [_try(stuffing, _email("guess"), "guess").status_code for _ in range(20)]
    assert answers == [401] * 19 + [429]  # each e-mail once: only the address count grows

    blocked = _try(stuffing, user.email, PASSWORD)
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "30"
    assert "Too many attempts" in blocked.text
    elsewhere = _try(_client(service), user.email, PASSWORD)  # another address signs in
    assert elsewhere.status_code == 303

    clock.advance(seconds=31)
    assert _try(stuffing, user.email, PASSWORD).status_code == 303
    # The address is still past its limit (a right password gave back only its own try).
    assert _try(stuffing, _email("guess"), "guess").headers["retry-after"] == "60"


def test_an_unknown_email_costs_one_argon2_verification_like_a_known_one(
    service: Service, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = web_user(service, _email("tm"), project=project.slug, role="viewer")
    checked: list[str] = []
    real = auth.verify_password

    def spy(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", spy)
    start = time.perf_counter()
    for _ in range(3):
        real(auth.DUMMY_HASH, "x")
    one_verification = (time.perf_counter() - start) / 3

    client = _client(service)
    timings = {}
    for email in (user.email, _email("unknown")):
        page = client.get("/login")
        started = time.perf_counter()
        answer = client.post(
            "/login", data={"email": email, "password": "wrong!", "csrf": _csrf(page.text)}
        )
        timings[email] = time.perf_counter() - started
        assert answer.status_code == 401 and "Wrong email or password." in answer.text
    known_hash, unknown_hash = checked
    assert known_hash.startswith("$argon2id$") and known_hash != auth.DUMMY_HASH
    assert unknown_hash == auth.DUMMY_HASH
    assert all(t > one_verification / 2 for t in timings.values()), (timings, one_verification)


def test_a_burst_of_parallel_guesses_is_counted_before_any_password_is_checked(
    service: Service, project: Project
) -> None:
    """Twelve wrong passwords at once: exactly five are checked, the rest refused unread."""
    user = web_user(service, _email("burst"), project=project.slug, role="viewer")
    address = next(_hosts)
    clients = [_client(service, address) for _ in range(12)]
    forms = [_csrf(c.get("/login").text) for c in clients]
    barrier = threading.Barrier(len(clients))

    def guess(i: int) -> tuple[int, str]:
        barrier.wait()
        answer = clients[i].post(
            "/login", data={"email": user.email, "password": f"guess {i}", "csrf": forms[i]}
        )
        return answer.status_code, answer.text

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(guess, range(len(clients))))
    checked = [text for code, text in answers if "Wrong email or password." in text]
    assert len(checked) == 5, [code for code, _ in answers]
    assert sorted(code for code, _ in answers) == [401] * 4 + [429] * 8
