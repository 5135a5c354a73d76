"""Issuers administered through the API against the real CAs of the lab: the Test button's
steps (Pebble for ACME, the AD CS double - the stand-in the reference names - for AD CS),
disabling (no new order of any kind, its certificates kept and warned about) and deleting
(409 while anything uses the issuer, then its secrets go with it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.issuers.models import Issuer
from certautopilot_lab.adcs_double import DEFAULT_USERS, AdcsDouble
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, add_pebble_issuer, create_project
from tests.integration._adcs_fixture import add_issuer, new_project


@pytest.fixture(scope="module")
def double() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"basic"}, ca_name="TEST-BUTTON-CA") as d:
        yield d


def _test(service: Service, slug: str, issuer_id: str) -> dict[str, Any]:
    found: dict[str, Any] = service.ok("POST", f"/projects/{slug}/issuers/{issuer_id}/test")
    return found


def _steps(found: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(s["step"], s["ok"]) for s in found["steps"]]


def _edit_config(service: Service, issuer_id: str, **changes: Any) -> None:
    """What cannot be done through the API (an ACME issuer's CA does not change): the row."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            issuer = session.get(Issuer, issuer_id)
            assert issuer is not None
            issuer.config = {**issuer.config, **changes}
    finally:
        engine.dispose()


def _secrets_of(service: Service, issuer_id: str) -> int:
    engine = make_engine(service.settings)
    try:
        with make_sessionmaker(engine)() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(StoredSecret)
                    .where(
                        StoredSecret.owner_table == "issuers", StoredSecret.owner_id == issuer_id
                    )
                )
                or 0
            )
    finally:
        engine.dispose()


def test_the_acme_test_reads_the_directory_then_the_account(service: Service, lab: LabInfo) -> None:
    seeded = create_project(service, lab, manual_zone=False)
    found = _test(service, seeded.slug, seeded.issuer_id)
    assert found["ok"] is True, found
    assert _steps(found) == [("directory", True), ("account", True)]
    directory, account = found["steps"]
    assert lab.directory_url in directory["detail"] and "newOrder" in directory["detail"]
    stored = service.ok("GET", f"/projects/{seeded.slug}/issuers/{seeded.issuer_id}")
    assert stored["acme"]["account_url"] in account["detail"]
    # A CA that cannot be reached fails the first step, in the transport's words.
    _edit_config(service, seeded.issuer_id, directory_url="https://127.0.0.1:9/dir")
    found = _test(service, seeded.slug, seeded.issuer_id)
    assert found["ok"] is False and _steps(found) == [("directory", False)]
    assert "127.0.0.1:9" in found["steps"][0]["detail"]


def test_the_adcs_test_signs_in_lists_templates_and_reads_the_chain(
    service: Service, double: AdcsDouble
) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double)
    found = _test(service, slug, issuer_id)
    assert found["ok"] is True, found
    assert _steps(found) == [("sign-in", True), ("templates", True), ("CA chain", True)]
    assert "WebServer" in found["steps"][1]["detail"]
    assert found["steps"][2]["detail"].startswith("2 certificate(s)")
    assert "Issuing CA" in found["steps"][2]["detail"]
    ((user, password),) = DEFAULT_USERS.items()
    with double.lock:
        double.users[user] = "rotated-at-the-ca"  # the service account's password changed
    try:
        found = _test(service, slug, issuer_id)
    finally:
        with double.lock:
            double.users[user] = password
    assert found["ok"] is False and _steps(found) == [("sign-in", False)]
    assert password not in str(found)
    mode = double.templates.pop("WebServerApproval")
    try:
        found = _test(service, slug, issuer_id)
    finally:
        double.templates["WebServerApproval"] = mode
    assert _steps(found) == [("sign-in", True), ("templates", False)]
    assert "WebServerApproval" in found["steps"][1]["detail"]


def test_a_disabled_issuer_takes_no_new_order_until_enabled(service: Service, lab: LabInfo) -> None:
    seeded = create_project(service, lab, manual_zone=False)
    slug, issuer_id = seeded.slug, seeded.issuer_id
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer_id, "common_name": "kept.sub.example.test"},
    )
    assert service.wait_for(slug, cert["id"], ("issued", "failed"))["status"] == "issued"
    off = service.ok("PATCH", f"/projects/{slug}/issuers/{issuer_id}", json={"enabled": False})
    assert off["enabled"] is False and off["status"] == "disabled"
    body = {"issuer": issuer_id, "common_name": "new.sub.example.test"}
    for path in ("/certificates", "/certificates/preflight"):
        refused = service.call("POST", f"/projects/{slug}{path}", json=body)
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == "issuer" and "disabled" in error["message"]
    renew = service.call("POST", f"/projects/{slug}/certificates/{cert['id']}/renew")
    assert renew.status_code == 409 and "disabled" in renew.json()["detail"]
    # The certificate it issued stays as it was.
    assert service.ok("GET", f"/projects/{slug}/certificates/{cert['id']}")["status"] == "issued"
    on = service.ok("PATCH", f"/projects/{slug}/issuers/{issuer_id}", json={"enabled": True})
    assert on["enabled"] is True
    again = service.ok("POST", f"/projects/{slug}/certificates", 202, json=body)
    assert service.wait_for(slug, again["id"], ("issued", "failed"))["status"] == "issued"
    exported = service.call("GET", f"/projects/{slug}/audit", params={"format": "jsonl"})
    events = exported.text.splitlines()
    changed = [e for e in events if '"issuer.updated"' in e and '"enabled"' in e]
    assert len(changed) == 2


def test_an_issuer_in_use_is_not_deleted_one_unused_is_with_its_secrets(
    service: Service, lab: LabInfo
) -> None:
    seeded = create_project(service, lab, manual_zone=False)
    slug = seeded.slug
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": seeded.issuer_id, "common_name": "used.sub.example.test"},
    )
    refused = service.call("DELETE", f"/projects/{slug}/issuers/{seeded.issuer_id}")
    assert refused.status_code == 409, refused.text
    assert cert["id"] in refused.json()["detail"] and "disable" in refused.json()["detail"]
    spare = add_pebble_issuer(service, lab, slug, name="spare")
    assert _secrets_of(service, spare["id"]) == 1  # its ACME account key
    service.ok("PUT", f"/projects/{slug}/policy", json={"fallback_issuers": ["spare"]})
    listed = service.call("DELETE", f"/projects/{slug}/issuers/{spare['id']}")
    assert listed.status_code == 409 and "fallback_issuers" in listed.json()["detail"]
    service.ok("PUT", f"/projects/{slug}/policy", json={})
    gone = service.call("DELETE", f"/projects/{slug}/issuers/{spare['id']}")
    assert gone.status_code == 204, gone.text
    assert service.call("GET", f"/projects/{slug}/issuers/{spare['id']}").status_code == 404
    assert _secrets_of(service, spare["id"]) == 0
    names = [i["name"] for i in service.ok("GET", f"/projects/{slug}/issuers")]
    assert names == ["pebble"]
