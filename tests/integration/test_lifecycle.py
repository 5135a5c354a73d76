"""Renew, revoke (checked at the CA: Pebble's management API, acme2certifier's CRL), CA
failures with the CA's words, TXT cleanup on failure."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from certautopilot_lab.a2c import A2CInfo
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt, pebble_cert_status
from tests.conftest import (
    CA,
    Project,
    Service,
    a2c_ca,
    add_a2c_issuer,
    add_refused_zone,
    create_project,
)
from tests.integration._pebble_fixture import Pebble, make_tls


def test_renew_makes_a_new_version_with_a_new_key(service: Service, ca_project: Project) -> None:
    p = ca_project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": ca_project.issuer_id, "common_name": "renew.example.test"},
    )
    first = service.wait_for(p, created["id"], ("issued",))
    key1 = service.call("GET", f"/projects/{p}/certificates/{created['id']}/key.pem").text

    renewing = service.ok("POST", f"/projects/{p}/certificates/{created['id']}/renew", 202)
    assert renewing["status"] == "requested"
    assert renewing["current"]["serial"] == first["current"]["serial"]  # still served
    second = service.wait_for(p, created["id"], ("issued", "failed"))
    assert second["status"] == "issued", second["error"]
    assert second["current"]["serial"] != first["current"]["serial"]
    key2 = service.call("GET", f"/projects/{p}/certificates/{created['id']}/key.pem").text
    assert key1 != key2
    types = [e["type"] for e in service.timeline(p, created["id"])["events"]]
    assert types.count("cert.issued") == 1 and types.count("cert.renewed") == 1


def test_revoke_reaches_the_ca(service: Service, ca_project: Project, acme_ca: CA) -> None:
    p = ca_project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": ca_project.issuer_id, "common_name": "revoke.example.test"},
    )
    issued = service.wait_for(p, created["id"], ("issued",))
    bad = service.call(
        "POST",
        f"/projects/{p}/certificates/{created['id']}/revoke",
        json={"reason": "becauseISaidSo"},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reason"

    revoked = service.ok(
        "POST",
        f"/projects/{p}/certificates/{created['id']}/revoke",
        json={"reason": "keyCompromise"},
    )
    assert revoked["status"] == "revoked"
    assert revoked["renewal"] is None
    assert acme_ca.is_revoked(issued["current"]["serial"])
    assert (
        service.call(
            "POST",
            f"/projects/{p}/certificates/{created['id']}/revoke",
            json={"reason": "keyCompromise"},
        ).status_code
        == 409
    )
    assert (
        service.call("POST", f"/projects/{p}/certificates/{created['id']}/renew").status_code == 409
    )
    events = service.timeline(p, created["id"])["events"]
    revoke_event = next(e for e in events if e["type"] == "cert.revoked")
    assert revoke_event["detail"]["reason"] == "keyCompromise"
    assert revoke_event["actor"] == "admin@example.test"


def _issued_twice(service: Service, project: Project, name: str) -> tuple[str, list[str]]:
    """A certificate renewed once: its id and the serials of versions 1 and 2."""
    p = project.slug
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name},
    )["id"]
    first = service.wait_for(p, cid, ("issued",))["current"]["serial"]
    service.ok("POST", f"/projects/{p}/certificates/{cid}/renew", 202)
    second = service.wait_for(p, cid, ("issued", "failed"))
    assert second["status"] == "issued", second["error"]
    return cid, [first, second["current"]["serial"]]


def _version_statuses(service: Service, project: Project, cid: str) -> dict[int, str]:
    versions = service.ok("GET", f"/projects/{project.slug}/certificates/{cid}/versions")
    return {v["seq"]: v["status"] for v in versions}


def test_revoke_says_which_earlier_versions_stay_valid_and_revokes_them_on_request(
    service: Service, project: Project, lab: LabInfo
) -> None:
    p = project.slug
    cid, (v1, v2) = _issued_twice(service, project, "revoke-versions.example.test")
    path = f"/projects/{p}/certificates/{cid}/revoke"

    current_only = service.ok("POST", path, json={"reason": "keyCompromise"})
    assert current_only["status"] == "revoked"
    assert current_only["revoked_versions"] == [{"version": 2, "serial": v2}]
    assert current_only["still_valid_versions"] == [{"version": 1, "serial": v1}]
    assert pebble_cert_status(lab, v2)["Status"] == "Revoked"
    assert pebble_cert_status(lab, v1)["Status"] == "Valid"
    assert _version_statuses(service, project, cid) == {1: "issued", 2: "revoked"}

    # Revoked already, but version 1 is still valid: all_versions revokes it.
    rest = service.ok("POST", path, json={"reason": "keyCompromise", "all_versions": True})
    assert rest["revoked_versions"] == [{"version": 1, "serial": v1}]
    assert rest["still_valid_versions"] == []
    assert pebble_cert_status(lab, v1)["Status"] == "Revoked"
    assert _version_statuses(service, project, cid) == {1: "revoked", 2: "revoked"}
    again = service.call("POST", path, json={"reason": "keyCompromise", "all_versions": True})
    assert again.status_code == 409, again.text
    events = [e for e in service.timeline(p, cid)["events"] if e["type"] == "cert.revoked"]
    assert sorted(e["detail"]["version"] for e in events) == [1, 2]


def test_revoke_all_versions_at_once(service: Service, project: Project, lab: LabInfo) -> None:
    p = project.slug
    cid, (v1, v2) = _issued_twice(service, project, "revoke-all.example.test")
    done = service.ok(
        "POST",
        f"/projects/{p}/certificates/{cid}/revoke",
        json={"reason": "superseded", "all_versions": True},
    )
    assert done["status"] == "revoked"
    assert done["revoked_versions"] == [
        {"version": 2, "serial": v2},
        {"version": 1, "serial": v1},
    ]
    assert done["still_valid_versions"] == []
    assert [pebble_cert_status(lab, s)["Status"] for s in (v1, v2)] == ["Revoked", "Revoked"]
    assert _version_statuses(service, project, cid) == {1: "revoked", 2: "revoked"}


def test_dns_provider_refusal_fails_clearly_without_leaking_the_secret(
    service: Service, project: Project, lab: LabInfo
) -> None:
    """A zone whose TSIG secret BIND does not know: the job fails, saying why."""
    p = project.slug
    add_refused_zone(service, lab, p, "broken.example.test", propagation_timeout_seconds=2)
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "x.broken.example.test"},
    )
    failed = service.wait_for(p, created["id"], ("issued", "failed"))
    assert failed["status"] == "failed"
    assert failed["error"]["title"] == "DNS error"
    assert failed["error"]["detail"]
    assert "d3JvbmctYnV0" not in str(failed)
    print(failed["error"])
    timeline = service.timeline(p, created["id"])
    assert "d3JvbmctYnV0" not in str(timeline)
    types = [e["type"] for e in timeline["events"]]
    assert "cert.failed" in types and "cert.issued" not in types
    assert timeline["step"] is None


def test_ca_rejection_fails_with_ca_problem_and_removes_txt(
    service: Service, project: Project, lab: LabInfo
) -> None:
    """The record is published but never visible on the zone's listed nameserver → the
    service never answers the challenge and fails at its deadline; then the CA case: the
    TXT is published where the CA looks, but with a CNAME override to a name the CA does
    not look at, so validation fails with Pebble's own problem detail."""
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": "wrong.example.test",
            "challenge_overrides": {
                "wrong.example.test": {
                    "zone": "example.test",
                    "challenge_name": "_acme-challenge.elsewhere.example.test",
                }
            },
        },
    )
    failed = service.wait_for(p, created["id"], ("issued", "failed"), timeout=60)
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
    assert "_acme-challenge.wrong.example.test" in failed["error"]["detail"]
    types = [e["type"] for e in service.timeline(p, created["id"])["events"]]
    assert "dns.record.published" in types and "dns.record.removed" in types
    deadline = time.monotonic() + 5
    while any("elsewhere" in n for n, _ in axfr_txt(lab, "example.test")):
        assert time.monotonic() < deadline, "a TXT record was left behind after a failure"
        time.sleep(0.1)


def test_a_reason_the_ca_refuses_is_a_422_on_reason_and_on_the_timeline(
    service: Service, a2c: A2CInfo, lab: LabInfo
) -> None:
    """acme2certifier refuses aACompromise (``badRevocationReason``): the caller hears the
    CA's words on the ``reason`` field, the attempt is on the timeline, and the certificate
    stays issued and can be revoked with a reason the CA takes."""
    made = create_project(service, lab, manual_zone=False)
    issuer = add_a2c_issuer(service, a2c, made.slug)
    p = made.slug
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": issuer["id"], "common_name": "refused-reason.example.test"},
    )["id"]
    issued = service.wait_for(p, cid, ("issued",))
    refused = service.call(
        "POST", f"/projects/{p}/certificates/{cid}/revoke", json={"reason": "aACompromise"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    [error] = refused.json()["errors"]
    assert error["field"] == "reason" and error["message"].startswith("the CA refused the reason")
    events = service.timeline(p, cid)["events"]
    attempt = next(e for e in events if e["type"] == "cert.revocation_refused")
    assert attempt["detail"]["reason"] == "aACompromise"
    assert attempt["detail"]["error"] in error["message"]
    assert attempt["actor"] == "admin@example.test"
    assert service.ok("GET", f"/projects/{p}/certificates/{cid}")["status"] == "issued"

    revoked = service.ok(
        "POST", f"/projects/{p}/certificates/{cid}/revoke", json={"reason": "keyCompromise"}
    )
    assert revoked["status"] == "revoked"
    assert a2c_ca(a2c).is_revoked(issued["current"]["serial"])


def test_a_renewal_on_an_authorization_the_ca_reused_says_so(
    service: Service, project: Project, lab: LabInfo, tmp_path: Path
) -> None:
    """A CA may reuse a valid authorization (RFC 8555 §7.1.4; Pebble told to always do it):
    the renewal publishes nothing, and its timeline names the name the CA did not ask
    about, instead of leaving a gap where the DNS work was last time."""
    pebble = Pebble(
        tmp_path / "pebble", make_tls(tmp_path / "tls"), lab.dns_port, authz_reuse_percent=100
    )
    try:
        p = project.slug
        issuer = service.ok(
            "POST",
            f"/projects/{p}/issuers",
            201,
            json={
                "name": f"pebble-reusing-{uuid.uuid4().hex[:6]}",
                "kind": "acme",
                "acme": {
                    "directory_url": pebble.directory_url,
                    "contact_email": "ops@example.test",
                    "terms_agreed": True,
                    "ca_bundle_pem": pebble.tls.ca_pem,
                },
            },
        )
        created = service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={"issuer": issuer["id"], "common_name": "reused.example.test"},
        )
        first = service.wait_for(p, created["id"], ("issued", "failed"))
        assert first["status"] == "issued", first["error"]
        service.ok("POST", f"/projects/{p}/certificates/{created['id']}/renew", 202)
        second = service.wait_for(p, created["id"], ("issued", "failed"))
        assert second["status"] == "issued", second["error"]
        assert second["current"]["serial"] != first["current"]["serial"]

        events = service.timeline(p, created["id"])["events"]
        valid = [e["detail"] for e in events if e["type"] == "acme.authorizations.valid"]
        assert valid == [
            {"names": ["reused.example.test"]},
            {"names": [], "reused": ["reused.example.test"]},
        ]
        published = [e for e in events if e["type"] == "dns.record.published"]
        assert len(published) == 1  # the first order's record only
    finally:
        pebble.stop()
