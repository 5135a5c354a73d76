"""Manual DNS: the job pauses with the exact TXT record and resumes on "I've added it"."""

from __future__ import annotations

import time

from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt
from tests.conftest import Project, Service


def _publish_by_hand(lab: LabInfo, name: str, value: str) -> None:
    provider = RFC2136Provider(
        RFC2136Config(
            server="127.0.0.1",
            port=lab.dns_port,
            tsig_name=lab.tsig_name,
            tsig_algorithm=lab.tsig_algorithm,
            tsig_secret=lab.tsig_secret,
        )
    )
    provider.publish_txt("manual.test", name, value, 60)


def test_manual_dns_pauses_shows_record_and_resumes(
    service: Service, project: Project, lab: LabInfo
) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": "shop.manual.test",
        },
    )
    assert created["auto_renew"] is False
    assert "Manual DNS" in created["auto_renew_disabled_reason"]

    waiting = service.wait_for(p, created["id"], ("awaiting_dns", "failed"))
    assert waiting["status"] == "awaiting_dns", waiting
    action = waiting["pending_action"]
    assert action["kind"] == "manual_dns"
    [record] = action["records"]
    assert record["name"] == "_acme-challenge.shop.manual.test"
    assert record["type"] == "TXT"
    assert len(record["value"]) == 43  # base64url SHA-256 digest
    assert service.timeline(p, created["id"])["step"] == "awaiting_dns"

    # "I've added it" before it is published: the service says so and keeps waiting.
    service.ok("POST", f"/projects/{p}/certificates/{created['id']}/dns-confirm", 202)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = service.ok("GET", f"/projects/{p}/certificates/{created['id']}")
        if "Not visible yet" in (body["pending_action"] or {}).get("message", ""):
            break
        time.sleep(0.05)
    assert body["status"] == "awaiting_dns"
    assert "_acme-challenge.shop.manual.test" in body["pending_action"]["message"]

    _publish_by_hand(lab, record["name"], record["value"])
    service.ok("POST", f"/projects/{p}/certificates/{created['id']}/dns-confirm", 202)
    issued = service.wait_for(p, created["id"], ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    assert issued["pending_action"] is None
    assert issued["renewal"] is None  # never auto-renewed

    types = [e["type"] for e in service.timeline(p, created["id"])["events"]]
    assert types.index("dns.manual.requested") < types.index("dns.manual.not_visible")
    assert types.index("dns.manual.not_visible") < types.index("dns.manual.confirmed")
    assert "dns.record.published" not in types  # the service published nothing itself
    assert any("_acme-challenge.shop" in n for n, _ in axfr_txt(lab, "manual.test"))


def test_dns_confirm_when_not_waiting_is_409(service: Service, project: Project) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": "plain.example.test",
        },
    )
    service.wait_for(p, created["id"], ("issued",))
    response = service.call("POST", f"/projects/{p}/certificates/{created['id']}/dns-confirm")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "not waiting for DNS" in response.json()["detail"]
