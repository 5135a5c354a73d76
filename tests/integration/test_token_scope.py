"""API tokens with an expiry and a scope (project, role ceiling), through the running
service: what a script holding such a token can and cannot do, and the errors it is told."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.clock import utcnow
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import Service


def _project(service: Service) -> str:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": slug})
    return slug


def _operator(service: Service, *slugs: str) -> tuple[str, str]:
    """A user who is operator in each of ``slugs``, and an unlimited token of theirs."""
    email = f"op-{uuid.uuid4().hex[:6]}@example.test"
    for slug in slugs:
        body = {"email": email, "role": "operator"}
        service.ok("POST", f"/projects/{slug}/members", 201, json=body)
    return email, service.token_for(email)


def _field(response: object, name: str) -> str:
    body = response.json()  # type: ignore[attr-defined]
    [error] = [e for e in body["errors"] if e["field"] == name]
    return str(error["message"])


def test_a_new_token_expires_after_90_days_unless_asked_and_says_so(service: Service) -> None:
    made = service.ok("POST", "/tokens", 201, json={"name": f"ci-{uuid.uuid4().hex[:6]}"})
    assert made["expired"] is False and made["project"] is None and made["role"] is None
    left = made["expires_at"]
    listed = {t["id"]: t for t in service.ok("GET", "/tokens")}
    assert listed[made["id"]]["expires_at"] == left
    off = utcnow() + timedelta(days=90) - datetime.fromisoformat(left)
    assert timedelta(0) <= off < timedelta(minutes=2)  # 90 days from the request
    never = service.ok("POST", "/tokens", 201, json={"name": "forever", "expires_in_days": None})
    assert never["expires_at"] is None
    for bad in (0, 3651, "soon"):
        refused = service.call("POST", "/tokens", json={"name": "x", "expires_in_days": bad})
        assert refused.status_code == 422, refused.text
        assert "expires_in_days" in refused.text


def test_an_expired_token_is_refused_saying_when_it_expired(service: Service) -> None:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = auth.ensure_user(session, email=f"old-{uuid.uuid4().hex[:6]}@example.test")
            old = tokens.create_token(
                session,
                user=user,
                name="old",
                expires_in_days=1,
                now=utcnow() - timedelta(days=2),
            )
    finally:
        engine.dispose()
    refused = service.call("GET", "/projects", token=old)
    assert refused.status_code == 401
    assert "the API token expired on" in refused.json()["detail"]
    assert "create a new one" in refused.json()["detail"]


def test_a_project_token_reaches_its_project_only(service: Service) -> None:
    mine, other = _project(service), _project(service)
    _, wide = _operator(service, mine, other)
    made = service.ok("POST", "/tokens", 201, json={"name": "deploy", "project": mine}, token=wide)
    assert (made["project"], made["role"]) == (mine, None)
    narrow = made["token"]

    assert [p["slug"] for p in service.ok("GET", "/projects", token=narrow)] == [mine]
    assert service.call("GET", f"/projects/{mine}/certificates", token=narrow).status_code == 200
    assert service.call("GET", "/plugins", token=narrow).status_code == 200

    elsewhere = service.call("GET", f"/projects/{other}/certificates", token=narrow)
    assert elsewhere.status_code == 403
    assert f"limited to project {mine}" in elsewhere.json()["detail"]
    assert f"cannot reach project {other}" in elsewhere.json()["detail"]
    # the owner's unlimited token still reaches both
    assert service.call("GET", f"/projects/{other}/certificates", token=wide).status_code == 200

    # a narrow token cannot mint a wide one, make projects or list sessions
    for method, path, body in (
        ("POST", "/tokens", {"name": "wider"}),
        ("GET", "/tokens", None),
        ("POST", "/projects", {"slug": f"x-{uuid.uuid4().hex[:6]}", "name": "x"}),
        ("GET", "/instance/sessions", None),
    ):
        refused = service.call(method, path, json=body, token=narrow)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "without a project or role limit" in refused.json()["detail"]


def test_a_role_ceiling_lowers_what_the_token_may_do(service: Service) -> None:
    slug = _project(service)
    _, wide = _operator(service, slug)
    made = service.ok("POST", "/tokens", 201, json={"name": "reader", "role": "viewer"}, token=wide)
    reader = made["token"]
    assert service.call("GET", f"/projects/{slug}/certificates", token=reader).status_code == 200
    body = {"issuer": "nope", "common_name": "www.example.test"}
    refused = service.call("POST", f"/projects/{slug}/certificates", json=body, token=reader)
    assert refused.status_code == 403
    assert "you are viewer" in refused.json()["detail"]
    # the same request with the owner's token gets past the role check (to the bad issuer)
    allowed = service.call("POST", f"/projects/{slug}/certificates", json=body, token=wide)
    assert allowed.status_code != 403, allowed.text


def test_a_token_cannot_have_more_than_its_owner(service: Service) -> None:
    slug, foreign = _project(service), _project(service)
    _, wide = _operator(service, slug)
    higher = service.call(
        "POST", "/tokens", json={"name": "x", "project": slug, "role": "admin"}, token=wide
    )
    assert higher.status_code == 422
    assert f"you are operator in {slug}" in _field(higher, "role")
    outside = service.call("POST", "/tokens", json={"name": "x", "project": foreign}, token=wide)
    assert outside.status_code == 422
    assert "not a member" in _field(outside, "project")
    unknown = service.call("POST", "/tokens", json={"name": "x", "role": "root"}, token=wide)
    assert unknown.status_code == 422 and "role" in unknown.text
