"""Issuer fallback against real CAs: a certificate whose issuer cannot issue is issued by
its fallback issuer (acme2certifier), the timeline says why, and the next renewal tries
the first issuer again.

The first issuer is unreachable because it really is: a Pebble of the test's own, started
to register the issuer's account and then stopped; or it is forbidden by a CAA record
published in the lab's BIND through RFC 2136 that names only acme2certifier."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certautopilot_lab.a2c import A2CInfo
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, a2c_ca, add_a2c_issuer, create_project
from tests.integration._pebble_fixture import Pebble, binaries_present, make_tls
from tests.integration.test_caa import Caa
from tests.integration.test_issuance import _verify_chain

pytestmark = pytest.mark.skipif(not binaries_present(), reason="pebble not installed")

A2C_IDENTITY = "a2c.lab.test"
PEBBLE_IDENTITY = "pebble.lab.test"


@pytest.fixture
def caa(lab: LabInfo) -> Iterator[Caa]:
    records = Caa(lab)
    try:
        yield records
    finally:
        records.remove_all()


def _stopped_pebble_issuer(service: Service, lab: LabInfo, slug: str, tmp: Path) -> str:
    """An issuer on a Pebble of this test's own, which is then stopped: it cannot answer."""
    tls = make_tls(tmp / "tls")
    pebble = Pebble(tmp / "pebble", tls, lab.dns_port)
    try:
        issuer = service.ok(
            "POST",
            f"/projects/{slug}/issuers",
            201,
            json={
                "name": "pebble-gone",
                "kind": "acme",
                "acme": {
                    "directory_url": pebble.directory_url,
                    "contact_email": "ops@example.test",
                    "terms_agreed": True,
                    "ca_bundle_pem": tls.ca_pem,
                },
            },
        )
    finally:
        pebble.stop()
    return str(issuer["id"])


def _fallbacks(service: Service, slug: str, cert_id: str) -> list[dict[str, Any]]:
    return [
        e["detail"]
        for e in service.timeline(slug, cert_id)["events"]
        if e["type"] == "cert.issuer_fallback"
    ]


def _chain(service: Service, slug: str, cert_id: str) -> str:
    response = service.call("GET", f"/projects/{slug}/certificates/{cert_id}/fullchain.pem")
    assert response.status_code == 200, response.text
    return str(response.text)


def test_unreachable_issuer_falls_back_and_the_renewal_tries_it_again(
    service: Service, lab: LabInfo, a2c: A2CInfo, tmp_path: Path
) -> None:
    p = create_project(service, lab)
    gone = _stopped_pebble_issuer(service, lab, p.slug, tmp_path)
    fallback = add_a2c_issuer(service, a2c, p.slug)
    name = f"fb{secrets.token_hex(3)}.example.test"
    created = service.ok(
        "POST",
        f"/projects/{p.slug}/certificates",
        202,
        json={"issuer": gone, "common_name": name, "fallback_issuers": [fallback["id"]]},
    )
    assert created["fallback_issuers"] == [fallback["id"]]
    body = service.wait_for(p.slug, created["id"], ("issued", "failed"), timeout=180)
    assert body["status"] == "issued", body["error"]
    assert body["issuer"] == gone  # the certificate keeps its own issuer
    assert body["current"]["issuer"] == fallback["id"]  # this version: the fallback's
    _verify_chain(_chain(service, p.slug, created["id"]), a2c_ca(a2c))

    [event] = _fallbacks(service, p.slug, created["id"])
    assert event["reason"] == "unreachable"
    assert (event["from"], event["from_issuer"]) == (gone, "pebble-gone")
    assert (event["to"], event["to_issuer"]) == (fallback["id"], "acme2certifier")
    assert event["version"] == 1 and event["detail"]

    # the renewal is a new version on the first issuer again: it is still down, so the
    # timeline shows it tried that issuer first, then fell back once more
    service.ok("POST", f"/projects/{p.slug}/certificates/{created['id']}/renew", 202)
    renewed = service.wait_for(p.slug, created["id"], ("issued", "failed"), timeout=180)
    assert renewed["status"] == "issued", renewed["error"]
    assert renewed["current"]["serial"] != body["current"]["serial"]
    events = _fallbacks(service, p.slug, created["id"])
    assert len(events) == 2
    assert events[1]["version"] == 2 and events[1]["from"] == gone
    assert events[1]["to"] == fallback["id"]

    # revocation goes to the CA that issued each version (the first issuer is still down)
    revoked = service.ok(
        "POST",
        f"/projects/{p.slug}/certificates/{created['id']}/revoke",
        json={"reason": "superseded", "all_versions": True},
    )
    assert revoked["status"] == "revoked"
    for serial in (body["current"]["serial"], renewed["current"]["serial"]):
        assert a2c_ca(a2c).is_revoked(serial), serial


def test_caa_that_allows_only_the_fallback(
    service: Service, lab: LabInfo, a2c: A2CInfo, caa: Caa
) -> None:
    p: Project = create_project(service, lab)
    fallback = add_a2c_issuer(service, a2c, p.slug)
    for issuer_id, identity in ((p.issuer_id, PEBBLE_IDENTITY), (fallback["id"], A2C_IDENTITY)):
        service.ok(
            "PATCH",
            f"/projects/{p.slug}/issuers/{issuer_id}",
            json={"acme": {"caa_identity": identity}},
        )
    base = f"caafb{secrets.token_hex(3)}.example.test"
    www = f"www.{base}"
    caa.set(base, f'0 issue "{A2C_IDENTITY}"')
    request = {"issuer": p.issuer_id, "common_name": www, "fallback_issuers": [fallback["id"]]}

    # preflight: no warning that stops the request, a note that says what will happen
    pre = service.ok("POST", f"/projects/{p.slug}/certificates/preflight", json=request)
    assert [w for w in pre["warnings"] if w["code"] == "caa.not_allowed"] == []
    assert any("fallback issuer 'acme2certifier'" in n for n in pre["notes"])
    assert pre["fallback_issuers"] == [fallback["id"]]

    created = service.ok("POST", f"/projects/{p.slug}/certificates", 202, json=request)
    body = service.wait_for(p.slug, created["id"], ("issued", "failed"), timeout=120)
    assert body["status"] == "issued", body["error"]
    assert body["current"]["issuer"] == fallback["id"]
    _verify_chain(_chain(service, p.slug, created["id"]), a2c_ca(a2c))
    [event] = _fallbacks(service, p.slug, created["id"])
    assert event["reason"] == "caa"
    assert PEBBLE_IDENTITY in event["detail"] and base in event["detail"]
    assert (event["from"], event["to"]) == (p.issuer_id, fallback["id"])

    # the CAA record now allows Pebble too: the renewal goes to the first issuer again
    caa.set(base, f'0 issue "{A2C_IDENTITY}"', f'0 issue "{PEBBLE_IDENTITY}"')
    service.ok("POST", f"/projects/{p.slug}/certificates/{created['id']}/renew", 202)
    renewed = service.wait_for(p.slug, created["id"], ("issued", "failed"), timeout=120)
    assert renewed["status"] == "issued", renewed["error"]
    assert renewed["current"]["issuer"] == p.issuer_id
    assert len(_fallbacks(service, p.slug, created["id"])) == 1


def test_fallback_issuers_are_checked_against_policy(
    service: Service, lab: LabInfo, a2c: A2CInfo
) -> None:
    p = create_project(service, lab)
    fallback = add_a2c_issuer(service, a2c, p.slug)
    service.ok(
        "PUT",
        f"/projects/{p.slug}/policy",
        json={"allowed_issuers": [p.issuer_id]},
    )
    for refs, words in (
        ([fallback["id"]], "does not allow the issuer 'acme2certifier'"),
        (["nope"], "no issuer 'nope'"),
        ([p.issuer_id], "the certificate's own issuer"),
    ):
        refused = service.call(
            "POST",
            f"/projects/{p.slug}/certificates",
            json={
                "issuer": p.issuer_id,
                "common_name": "www.example.test",
                "fallback_issuers": refs,
            },
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        [error] = refused.json()["errors"]
        assert error["field"] == "fallback_issuers" and words in error["message"], error


def test_out_of_budget_issuer_hands_the_order_to_the_fallback(
    service: Service, lab: LabInfo, a2c: A2CInfo
) -> None:
    p = create_project(service, lab)
    fallback = add_a2c_issuer(service, a2c, p.slug)
    service.ok(
        "PATCH",
        f"/projects/{p.slug}/issuers/{p.issuer_id}",
        json={"acme": {"rate_limits": {"preset": "letsencrypt", "duplicate_certs": 1}}},
    )
    name = f"budget{secrets.token_hex(3)}.example.test"
    first = service.ok(
        "POST",
        f"/projects/{p.slug}/certificates",
        202,
        json={"issuer": p.issuer_id, "common_name": name},
    )
    assert service.wait_for(p.slug, first["id"], ("issued", "failed"))["status"] == "issued"
    # without a fallback the same names again are refused: the duplicate budget is spent
    refused = service.call(
        "POST",
        f"/projects/{p.slug}/certificates",
        json={"issuer": p.issuer_id, "common_name": name},
    )
    assert refused.status_code == 429, refused.text
    second = service.ok(
        "POST",
        f"/projects/{p.slug}/certificates",
        202,
        json={"issuer": p.issuer_id, "common_name": name, "fallback_issuers": [fallback["id"]]},
    )
    body = service.wait_for(p.slug, second["id"], ("issued", "failed"), timeout=120)
    assert body["status"] == "issued", body["error"]
    assert body["current"]["issuer"] == fallback["id"]
    [event] = _fallbacks(service, p.slug, second["id"])
    assert event["reason"] == "budget" and "exactly these names" in event["detail"]
    assert (event["from"], event["to"]) == (p.issuer_id, fallback["id"])
