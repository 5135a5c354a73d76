"""Renew, revoke (checked at Pebble), CA failures with the CA's words, TXT cleanup on failure."""

from __future__ import annotations

import time

from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt, pebble_cert_status
from tests.conftest import Project, Service, add_refused_zone


def test_renew_makes_a_new_version_with_a_new_key(service: Service, project: Project) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "renew.example.test"},
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


def test_revoke_reaches_the_ca(service: Service, project: Project, lab: LabInfo) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "revoke.example.test"},
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
    status = pebble_cert_status(lab, issued["current"]["serial"])
    assert status["Status"] == "Revoked", status
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
