"""Members (remove, the last admin stays) and a user's API tokens (list, revoke), audited."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from certautopilot.audit.models import AuditEvent
from certautopilot.auth import service as auth
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.errors import NotFound, Unauthenticated
from tests.conftest import Service


def _project(service: Service) -> str:
    slug = f"m-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": slug})
    return slug


def _events(service: Service, type_: str) -> list[AuditEvent]:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return list(session.scalars(select(AuditEvent).where(AuditEvent.type == type_)))
    finally:
        engine.dispose()


def test_remove_member_is_audited_and_ends_access(service: Service) -> None:
    slug = _project(service)
    email = f"op-{uuid.uuid4().hex[:6]}@example.test"
    service.ok("POST", f"/projects/{slug}/members", 201, json={"email": email, "role": "operator"})
    token = service.token_for(email)
    assert service.call("GET", f"/projects/{slug}", token=token).status_code == 200

    denied = service.call("DELETE", f"/projects/{slug}/members/admin@example.test", token=token)
    assert denied.status_code == 403
    assert service.call("DELETE", f"/projects/{slug}/members/{email}").status_code == 204
    assert service.call("GET", f"/projects/{slug}", token=token).status_code == 404
    assert email not in [m["email"] for m in service.ok("GET", f"/projects/{slug}/members")]
    assert service.call("DELETE", f"/projects/{slug}/members/{email}").status_code == 404
    removed = [e for e in _events(service, "member.removed") if e.project_id is not None]
    assert any(
        e.detail == {"email": email, "role": "operator"} and e.actor == "admin@example.test"
        for e in removed
    )


def test_the_last_admin_can_neither_step_down_nor_be_removed(service: Service) -> None:
    slug = _project(service)
    me = {"email": "admin@example.test", "role": "viewer"}
    demote = service.call("POST", f"/projects/{slug}/members", json=me)
    assert demote.status_code == 409 and "only admin" in demote.json()["detail"]
    gone = service.call("DELETE", f"/projects/{slug}/members/admin@example.test")
    assert gone.status_code == 409

    other = f"adm-{uuid.uuid4().hex[:6]}@example.test"
    service.ok("POST", f"/projects/{slug}/members", 201, json={"email": other, "role": "admin"})
    service.ok("POST", f"/projects/{slug}/members", 201, json=me)  # now someone else is admin
    roles = {m["email"]: m["role"] for m in service.ok("GET", f"/projects/{slug}/members")}
    assert roles == {"admin@example.test": "viewer", other: "admin"}


def test_tokens_are_listed_and_revoked_with_audit(service: Service) -> None:
    engine = make_engine(service.settings)
    factory = make_sessionmaker(engine)
    email = f"tok-{uuid.uuid4().hex[:6]}@example.test"
    try:
        with transaction(factory) as session:
            user = auth.ensure_user(session, email=email)
            first = auth.create_token(session, user=user, name="first")
            second = auth.create_token(session, user=user, name="second")
            other = auth.ensure_user(session, email=f"x-{email}")
            foreign = auth.create_token(session, user=other, name="not yours")
        with transaction(factory) as session:
            user = auth.ensure_user(session, email=email)
            rows = auth.list_tokens(session, user=user)
            assert sorted(r.name for r in rows) == ["first", "second"]
            assert {r.prefix for r in rows} == {first[:10], second[:10]}
            target = next(r for r in rows if r.name == "first")
            foreign_row = auth.list_tokens(session, user=auth.user_for_token(session, foreign))[0]
            with pytest.raises(NotFound):
                auth.revoke_token(session, user=user, token_id=foreign_row.id)
            auth.revoke_token(session, user=user, token_id=target.id)
        with transaction(factory) as session:
            with pytest.raises(Unauthenticated):
                auth.user_for_token(session, first)
            assert auth.user_for_token(session, second).email == email
            assert auth.user_for_token(session, foreign).email == f"x-{email}"
    finally:
        engine.dispose()
    assert service.call("GET", "/projects", token=first).status_code == 401
    revoked = [e for e in _events(service, "token.revoked") if e.actor == email]
    assert [e.detail["name"] for e in revoked] == ["first"]
    assert "token_hash" not in str(revoked[0].detail)
    created = [e.detail["name"] for e in _events(service, "token.created") if e.actor == email]
    assert sorted(created) == ["first", "second"]
