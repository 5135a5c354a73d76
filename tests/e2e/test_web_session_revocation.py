"""Server-side web sessions (issue #12, item 7): what ends a session, seen from a browser's
cookie jar. A copy of the cookie taken before the end is refused after it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from certautopilot.audit.models import AuditEvent
from certautopilot.auth.models import User, WebSession
from certautopilot.auth.sessions import hash_token
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.web.session import COOKIE
from tests.conftest import Project, Service
from tests.e2e.conftest import FakeClock, web_user
from tests.e2e.test_web_session import _csrf, _sign_in


def _signed_in(service: Service, email: str) -> TestClient:
    client = TestClient(service.client.app)
    _sign_in(client, email)
    return client


def _with_cookie(service: Service, value: str) -> TestClient:
    client = TestClient(service.client.app)
    client.cookies.set(COOKIE, value)
    return client


def _is_signed_in(client: TestClient) -> bool:
    page = client.get("/", follow_redirects=False)
    if page.status_code == 303 and page.headers["location"].startswith("/login"):
        return False
    assert page.status_code in (200, 303), page.text
    return True


def _revocations(service: Service, email: str) -> list[dict[str, object]]:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = session.scalar(select(User).where(User.email == email))
            assert user is not None
            stmt = select(AuditEvent).where(
                AuditEvent.type == "session.revoked", AuditEvent.subject_id == user.id
            )
            return [{"actor": e.actor, **e.detail} for e in session.scalars(stmt)]
    finally:
        engine.dispose()


def _row(service: Service, client: TestClient) -> WebSession:
    """The database row of the client's session (it holds the token's hash only)."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            digest = hash_token(client.cookies[COOKIE])
            row = session.scalar(select(WebSession).where(WebSession.token_hash == digest))
            assert row is not None
            return row
    finally:
        engine.dispose()


def _cli(service: Service, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", *args],
        input=stdin,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _email(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}@example.test"


def test_a_cookie_copied_before_sign_out_is_refused_after(
    service: Service, project: Project
) -> None:
    user = web_user(service, _email("out"), project=project.slug, role="viewer")
    client = _signed_in(service, user.email)
    copied = client.cookies[COOKIE]
    assert _is_signed_in(_with_cookie(service, copied))  # the copy works while signed in

    csrf = _csrf(client.get(f"/p/{project.slug}/certificates").text)
    out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303

    assert not _is_signed_in(_with_cookie(service, copied))
    [event] = _revocations(service, user.email)
    assert event["reason"] == "signed_out" and event["actor"] == user.email


def test_a_password_change_ends_every_session_of_the_user(
    service: Service, project: Project
) -> None:
    user = web_user(service, _email("pw"), project=project.slug, role="viewer")
    other = web_user(service, _email("pw-other"), project=project.slug, role="viewer")
    first, second = _signed_in(service, user.email), _signed_in(service, user.email)
    bystander = _signed_in(service, other.email)

    changed = _cli(service, "user", "set-password", "--email", user.email, stdin="a new secret!\n")
    assert changed.returncode == 0, changed.stderr
    assert "2 web session(s) ended" in changed.stdout

    assert not _is_signed_in(first) and not _is_signed_in(second)
    assert _is_signed_in(bystander)  # someone else's sessions stay
    fresh = TestClient(service.client.app)
    _sign_in(fresh, user.email, "a new secret!")
    assert _is_signed_in(fresh)
    [event] = _revocations(service, user.email)
    assert event["reason"] == "password_changed" and len(event["sessions"]) == 2  # type: ignore[arg-type]


def test_removal_from_the_last_project_ends_the_sessions(
    service: Service, project: Project
) -> None:
    p = project.slug
    second = f"s2-{uuid.uuid4().hex[:6]}"
    service.ok("POST", "/projects", 201, json={"slug": second, "name": "second"})
    user = web_user(service, _email("rm"), project=p, role="viewer")
    service.ok(
        "POST", f"/projects/{second}/members", 201, json={"email": user.email, "role": "viewer"}
    )
    client = _signed_in(service, user.email)

    removed = service.call("DELETE", f"/projects/{second}/members/{user.email}")
    assert removed.status_code == 204, removed.text
    assert _is_signed_in(client)  # still a member of one project
    assert client.get(f"/p/{p}/certificates").status_code == 200

    removed = service.call("DELETE", f"/projects/{p}/members/{user.email}")
    assert removed.status_code == 204, removed.text
    assert not _is_signed_in(client)
    [event] = _revocations(service, user.email)
    assert event["reason"] == "left_last_project" and event["actor"] == "admin@example.test"


def test_an_instance_admin_ends_sessions_by_api_and_cli(service: Service, project: Project) -> None:
    user = web_user(service, _email("adm"), project=project.slug, role="viewer")
    clients = [_signed_in(service, user.email) for _ in range(3)]
    tokens = [c.cookies[COOKIE] for c in clients]

    listed = service.call("GET", "/instance/sessions", params={"email": user.email})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 3 and {i["email"] for i in items} == {user.email}
    assert all(t not in listed.text for t in tokens)  # no token material, not even hashed
    assert "token" not in json.dumps(items)
    assert items[0]["client"] == "testclient"

    viewer_token = service.token_for(user.email)
    refused = service.call("GET", "/instance/sessions", token=viewer_token)
    assert refused.status_code == 403
    refused = service.call("DELETE", f"/instance/sessions/{items[0]['id']}", token=viewer_token)
    assert refused.status_code == 403
    assert service.call("DELETE", "/instance/sessions/nosuchsession").status_code == 404

    ids = {_row(service, c).id: c for c in clients}
    assert set(ids) == {i["id"] for i in items}
    first_id = items[0]["id"]
    gone = service.call("DELETE", f"/instance/sessions/{first_id}")
    assert gone.status_code == 204, gone.text
    assert not _is_signed_in(ids[first_id])
    assert sum(_is_signed_in(c) for c in clients) == 2

    listed_cli = _cli(service, "sessions", "list", "--email", user.email, "--output", "json")
    assert listed_cli.returncode == 0, listed_cli.stderr
    assert {i["id"] for i in json.loads(listed_cli.stdout)} == set(ids) - {first_id}
    assert all(t not in listed_cli.stdout for t in tokens)

    one = next(iter(set(ids) - {first_id}))
    ended = _cli(service, "sessions", "revoke", one)
    assert ended.returncode == 0 and "1 web session(s) ended" in ended.stdout, ended.stderr
    assert not _is_signed_in(ids[one])
    ended = _cli(service, "sessions", "revoke", "--email", user.email)
    assert ended.returncode == 0 and "1 web session(s) ended" in ended.stdout, ended.stderr
    assert not any(_is_signed_in(c) for c in clients)
    assert _cli(service, "sessions", "revoke", one).returncode == 2  # already gone

    again = [_signed_in(service, user.email) for _ in range(2)]
    all_of = service.call("DELETE", "/instance/sessions", params={"email": user.email})
    assert all_of.status_code == 200 and all_of.json() == {"revoked": 2}, all_of.text
    assert not any(_is_signed_in(c) for c in again)
    reasons = [e["reason"] for e in _revocations(service, user.email)]
    assert reasons == ["revoked_by_admin"] * 4


def _last_seen(service: Service, client: TestClient) -> datetime:
    return _row(service, client).last_seen_at


def test_an_idle_session_ends_and_a_used_one_lives_until_its_lifetime(
    service: Service, project: Project, clock: FakeClock
) -> None:
    assert service.settings.session_idle_minutes == 30  # the default
    user = web_user(service, _email("idle"), project=project.slug, role="viewer")
    client = _signed_in(service, user.email)
    signed_in_at = _last_seen(service, client)

    clock.advance(seconds=30)
    assert _is_signed_in(client)
    assert _last_seen(service, client) == signed_in_at  # within a minute: no write

    clock.advance(minutes=29)
    assert _is_signed_in(client)  # 29.5 minutes idle
    assert _last_seen(service, client) == clock.now  # a minute passed: written
    clock.advance(minutes=29)
    assert _is_signed_in(client)  # 58.5 minutes after sign-in, 29 idle
    clock.advance(minutes=30, seconds=1)
    assert not _is_signed_in(client)  # idle over 30 minutes

    busy = _signed_in(service, user.email)
    for _ in range(12 * 60 // 25):
        clock.advance(minutes=25)
        assert _is_signed_in(busy)
    clock.advance(minutes=25)  # used every 25 minutes, but now over 12 hours old
    assert not _is_signed_in(busy)
