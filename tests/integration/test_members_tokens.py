"""Members (remove, the last admin stays) and a user's API tokens (list, revoke), audited."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from certautopilot.app import create_app
from certautopilot.audit.models import AuditEvent
from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.config import ProjectCreators
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


def test_only_instance_admins_create_projects_unless_the_instance_says_everyone(
    service: Service,
) -> None:
    slug = f"p-{uuid.uuid4().hex[:10]}"
    viewer = service.token_for(f"v-{uuid.uuid4().hex[:6]}@example.test")
    refused = service.call("POST", "/projects", token=viewer, json={"slug": slug, "name": "x"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "CERTAUTOPILOT_PROJECT_CREATORS" in refused.json()["detail"]
    assert service.call("GET", f"/projects/{slug}").status_code == 404  # nothing created

    settings = dataclasses.replace(service.settings, project_creators=ProjectCreators.EVERYONE)
    with TestClient(create_app(settings)) as client:
        everyone = dataclasses.replace(service, client=client)
        made = everyone.ok("POST", "/projects", 201, token=viewer, json={"slug": slug, "name": "x"})
    assert made["slug"] == slug
    members = service.ok("GET", f"/projects/{slug}/members", token=viewer)
    assert [m["role"] for m in members] == ["admin"]  # the creator is its admin


def test_an_admin_removing_themselves_must_confirm(service: Service) -> None:
    slug = _project(service)
    me = f"adm-{uuid.uuid4().hex[:6]}@example.test"
    service.ok("POST", f"/projects/{slug}/members", 201, json={"email": me, "role": "admin"})
    token = service.token_for(me)
    unconfirmed = service.call("DELETE", f"/projects/{slug}/members/{me}", token=token)
    assert unconfirmed.status_code == 422, unconfirmed.text
    assert unconfirmed.json()["errors"][0]["field"] == "confirm"
    assert "lose access" in unconfirmed.json()["errors"][0]["message"]
    assert service.call("GET", f"/projects/{slug}", token=token).status_code == 200  # still in
    url = f"/projects/{slug}/members/{me}"
    assert service.call("DELETE", url, token=token, params={"confirm": "true"}).status_code == 204
    assert service.call("GET", f"/projects/{slug}", token=token).status_code == 404


def test_tokens_are_listed_and_revoked_with_audit(service: Service) -> None:
    engine = make_engine(service.settings)
    factory = make_sessionmaker(engine)
    email = f"tok-{uuid.uuid4().hex[:6]}@example.test"
    try:
        with transaction(factory) as session:
            user = auth.ensure_user(session, email=email)
            first = tokens.create_token(session, user=user, name="first")
            second = tokens.create_token(session, user=user, name="second")
            other = auth.ensure_user(session, email=f"x-{email}")
            foreign = tokens.create_token(session, user=other, name="not yours")
        with transaction(factory) as session:
            user = auth.ensure_user(session, email=email)
            rows = [row for row, _ in tokens.list_tokens(session, user=user)]
            assert sorted(r.name for r in rows) == ["first", "second"]
            assert {r.prefix for r in rows} == {first[:10], second[:10]}
            target = next(r for r in rows if r.name == "first")
            owner = tokens.user_for_token(session, foreign)
            [(foreign_row, _)] = tokens.list_tokens(session, user=owner)
            with pytest.raises(NotFound):
                tokens.revoke_token(session, user=user, token_id=foreign_row.id)
            tokens.revoke_token(session, user=user, token_id=target.id)
        with transaction(factory) as session:
            with pytest.raises(Unauthenticated):
                tokens.user_for_token(session, first)
            assert tokens.user_for_token(session, second).email == email
            assert tokens.user_for_token(session, foreign).email == f"x-{email}"
    finally:
        engine.dispose()
    assert service.call("GET", "/projects", token=first).status_code == 401
    revoked = [e for e in _events(service, "token.revoked") if e.actor == email]
    assert [e.detail["name"] for e in revoked] == ["first"]
    assert "token_hash" not in str(revoked[0].detail)
    created = [e.detail["name"] for e in _events(service, "token.created") if e.actor == email]
    assert sorted(created) == ["first", "second"]
