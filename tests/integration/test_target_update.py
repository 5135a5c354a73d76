"""PATCH a distribution target: settings edited and credentials rotated - the new secret
under a fresh DEK, the old ciphertext gone, neither ever returned; ``target.updated``
names the changed fields, never their values; the same checks as on create (SSRF guard,
the kind's schema); and the worker deploys with the new secret (a real HTTPS receiver
verifies the HMAC signature with it)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from certautopilot.audit.models import AuditEvent
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.distribution.models import DistributionTarget
from certautopilot.distribution.targets.webhook import verify
from tests.conftest import Project, Service
from tests.integration import distribution_servers as ds
from tests.integration.test_secrets import _everything_in_database

OLD = "whsec-old-0123456789abcdef-0123456"
NEW = "whsec-new-fedcba9876543210-6543210"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[ds.WebhookReceiver, int, str]]:
    cert, key = ds.self_signed("127.0.0.1")
    (tmp_path / "hook.pem").write_text(cert)
    (tmp_path / "hook.key").write_text(key)
    hooks = ds.WebhookReceiver()
    with ds.http_server(hooks.handle, tls=(tmp_path / "hook.pem", tmp_path / "hook.key")) as port:
        yield hooks, port, cert


def _db(service: Service, target_id: str) -> tuple[dict[str, Any], list[StoredSecret], list[Any]]:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            target = session.get(DistributionTarget, target_id)
            assert target is not None
            stored = list(
                session.scalars(
                    select(StoredSecret).where(
                        StoredSecret.owner_table == "distribution_targets",
                        StoredSecret.owner_id == target_id,
                    )
                )
            )
            session.expunge_all()
            events = [
                (e.type, e.detail)
                for e in session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.subject_id == target_id)
                    .order_by(AuditEvent.at, AuditEvent.id)
                )
            ]
            return {"secret_id": target.credentials_secret_id}, stored, events
    finally:
        engine.dispose()


def _signed_with(hook: dict[str, Any], secret: str) -> bool:
    h = hook["headers"]
    return verify(
        secret,
        h["x-certautopilot-timestamp"],
        hook["body"],
        h["x-certautopilot-signature"],
    )


def _wait_hooks(hooks: ds.WebhookReceiver, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(hooks.deliveries) < count:
        assert time.monotonic() < deadline, f"{len(hooks.deliveries)} deliveries"
        time.sleep(0.1)


def test_patch_edits_settings_and_rotates_the_credential(
    service: Service, project: Project, receiver: tuple[ds.WebhookReceiver, int, str]
) -> None:
    hooks, port, ca = receiver
    p = project.slug
    target = service.ok(
        "POST",
        f"/projects/{p}/targets",
        201,
        json={
            "name": "hook",
            "kind": "webhook",
            "webhook": {"url": f"https://127.0.0.1:{port}/v1", "secret": OLD, "ca_bundle_pem": ca},
        },
    )
    tid = target["id"]
    _, (old_row,), _ = _db(service, tid)
    old_ciphertext, old_dek = bytes(old_row.ciphertext), bytes(old_row.wrapped_dek)
    cert = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": "rotate.example.test",
            "distribution_targets": [tid],
        },
    )
    assert service.wait_for(p, cert["id"], ("issued", "failed"))["status"] == "issued"
    _wait_hooks(hooks, 1)
    assert hooks.deliveries[0]["path"] == "/v1" and _signed_with(hooks.deliveries[0], OLD)

    # the same checks as on create, naming the field; nothing changes
    for body, field in (
        ({"webhook": {"url": "https://10.20.30.40/x"}}, "webhook.url"),  # SSRF guard
        ({"webhook": {"url": f"http://127.0.0.1:{port}/x"}}, "webhook.url"),  # https only
        ({"webhook": {"secret": "short"}}, "webhook.secret"),
        ({"webhook": {"nope": 1}}, "webhook.nope"),
        ({"kind": "ssh"}, "kind"),
        ({"ssh": {"host": "a"}}, "ssh"),
    ):
        r = service.call("PATCH", f"/projects/{p}/targets/{tid}", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == field, r.text
    service.ok(
        "POST", f"/projects/{p}/targets", 201, json={**_local_or_hook(port, ca), "name": "x"}
    )
    assert (
        service.call("PATCH", f"/projects/{p}/targets/{tid}", json={"name": "x"}).status_code == 409
    )
    op = f"op-{p}@example.test"
    service.ok("POST", f"/projects/{p}/members", 201, json={"email": op, "role": "operator"})
    assert (
        service.call(
            "PATCH", f"/projects/{p}/targets/{tid}", token=service.token_for(op), json={}
        ).status_code
        == 403
    )
    assert service.call("PATCH", f"/projects/{p}/targets/nope", json={}).status_code == 404
    assert _db(service, tid)[1][0].id == old_row.id  # refused edits left the secret alone

    updated = service.ok(
        "PATCH",
        f"/projects/{p}/targets/{tid}",
        json={
            "name": "hook-v2",
            "webhook": {"url": f"https://127.0.0.1:{port}/v2", "secret": NEW},
            "retry": {"max_attempts": 2, "delay_seconds": 1, "backoff": 2},
        },
    )
    assert updated["name"] == "hook-v2" and updated["config"]["url"].endswith("/v2")
    assert updated["config"]["ca_bundle_pem"] == ca  # kept: merged key by key
    assert updated["credentials"] == ["secret"] and updated["retry"]["max_attempts"] == 2
    listed = json.dumps(service.ok("GET", f"/projects/{p}/targets"))
    assert NEW not in json.dumps(updated) and NEW not in listed and OLD not in listed

    ref, rows, events = _db(service, tid)
    (new_row,) = rows  # the old ciphertext is gone
    assert new_row.id == ref["secret_id"] != old_row.id
    assert bytes(new_row.wrapped_dek) != old_dek and bytes(new_row.ciphertext) != old_ciphertext
    everything = _everything_in_database(service)
    assert old_ciphertext.hex() not in everything and NEW not in everything
    kind, detail = events[-1]
    assert kind == "target.updated"
    assert detail["changed"] == ["name", "retry", "webhook.secret", "webhook.url"]
    assert OLD not in json.dumps(detail) and NEW not in json.dumps(detail)

    # an edit without credentials keeps the stored secret as it is
    service.ok("PATCH", f"/projects/{p}/targets/{tid}", json={"webhook": {"timeout_seconds": 5}})
    _, (same,), events = _db(service, tid)
    assert same.id == new_row.id and events[-1][1]["changed"] == ["webhook.timeout_seconds"]

    # the worker deploys with the new settings and the new secret
    service.ok("POST", f"/projects/{p}/certificates/{cert['id']}/deploy", 202, json={})
    _wait_hooks(hooks, 2)
    latest = hooks.deliveries[-1]
    assert latest["path"] == "/v2" and _signed_with(latest, NEW) and not _signed_with(latest, OLD)


def _local_or_hook(port: int, ca: str) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "webhook": {"url": f"https://127.0.0.1:{port}/other", "secret": OLD, "ca_bundle_pem": ca},
    }
