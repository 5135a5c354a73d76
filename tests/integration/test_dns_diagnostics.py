"""Propagation checks that tell the truth, end to end through the lab (Pebble + BIND).

Each authoritative server's answer reaches the timeline, the failure and the detail page;
a provider's refusal is an error, never "published"; wildcard + apex keep both TXT values
at one name; a manual zone whose nameservers cannot be found keeps waiting and says why.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from certautopilot.auth import service as auth
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.dns.models import DnsZone
from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt
from tests.conftest import Project, Service, add_pebble_issuer, add_refused_zone, create_project

pytestmark = pytest.mark.lab
PASSWORD = "diagnostics-password-1"


@pytest.fixture
def silent_ns() -> Iterator[str]:
    """A UDP port on loopback that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _rfc2136(lab: LabInfo) -> dict[str, Any]:
    return {
        "server": "127.0.0.1",
        "port": lab.dns_port,
        "tsig_name": lab.tsig_name,
        "tsig_algorithm": lab.tsig_algorithm,
        "tsig_secret": lab.tsig_secret,
    }


def _project(service: Service, lab: LabInfo, zone: dict[str, Any]) -> Project:
    """A project with the lab's issuer and one zone (``zone`` is its API body)."""
    slug = f"d-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Project {slug}"})
    issuer = add_pebble_issuer(service, lab, slug)
    made = service.ok("POST", f"/projects/{slug}/zones", 201, json=zone)
    return Project(slug, issuer["id"], {zone["name"]: made["id"]})


def _events(service: Service, slug: str, cert_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in service.timeline(slug, cert_id)["events"] if e["type"] == kind]


def _detail_page(service: Service, slug: str, cert_id: str) -> str:
    """The certificate's detail page as an admin signed in through the login form."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            auth.set_password(auth.ensure_user(session, email="admin@example.test"), PASSWORD)
    finally:
        engine.dispose()
    client = service.client
    try:
        form = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        signed_in = client.post(
            "/login",
            data={"email": "admin@example.test", "password": PASSWORD, "csrf": csrf.group(1)},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
        page = client.get(f"/p/{slug}/certificates/{cert_id}")
        assert page.status_code == 200
        return page.text
    finally:
        client.cookies.clear()


def _rows(html: str) -> list[tuple[str, str]]:
    """``(server, outcome)`` of each row of the DNS check table."""
    return re.findall(
        r'data-testid="dns-check-row" data-server="([^"]+)" data-outcome="([^"]+)"', html
    )


def test_timeout_names_each_server_and_what_it_saw(
    service: Service, lab: LabInfo, silent_ns: str
) -> None:
    bind = f"127.0.0.1:{lab.dns_port}"
    name = f"t{secrets.token_hex(3)}.example.test"
    project = _project(
        service,
        lab,
        {
            "name": "example.test",
            "provider": "rfc2136",
            "nameservers": [bind, silent_ns],  # BIND has the record; the other never answers
            "propagation_timeout_seconds": 2,
            "rfc2136": _rfc2136(lab),
        },
    )
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name},
    )
    failed = service.wait_for(project.slug, created["id"], ("issued", "failed"))
    assert failed["status"] == "failed"
    assert failed["error"]["title"] == "DNS record not visible", failed["error"]
    assert f"{silent_ns}: timeout" in failed["error"]["detail"]
    assert f"_acme-challenge.{name}" in failed["error"]["detail"]

    [check] = _events(service, project.slug, created["id"], "dns.propagation.checked")
    assert check["detail"]["ok"] is False
    [record] = check["detail"]["records"]
    assert record["name"] == f"_acme-challenge.{name}"
    by_server = {s["server"]: s for s in record["servers"]}
    assert by_server[bind]["outcome"] == "serves_value"
    assert by_server[bind]["values"] == [record["value"]]
    assert by_server[silent_ns]["outcome"] == "timeout"
    assert f"{silent_ns}: timeout" in check["detail"]["message"]
    types = [e["type"] for e in service.timeline(project.slug, created["id"])["events"]]
    assert types.index("dns.record.published") < types.index("dns.propagation.checked")
    assert "dns.record.removed" in types
    assert not [n for n, _ in axfr_txt(lab, "example.test") if n.endswith(name)]

    html = _detail_page(service, project.slug, created["id"])
    assert _rows(html) == [(bind, "serves_value"), (silent_ns, "timeout")]
    assert "DNS check" in html


def test_provider_refusal_is_an_error_never_published(service: Service, lab: LabInfo) -> None:
    project = create_project(service, lab, manual_zone=False)
    add_refused_zone(service, lab, project.slug, "refused.example.test")
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "r.refused.example.test"},
    )
    failed = service.wait_for(project.slug, created["id"], ("issued", "failed"))
    assert failed["status"] == "failed" and failed["error"]["title"] == "DNS error"
    events = service.timeline(project.slug, created["id"])["events"]
    types = [e["type"] for e in events]
    assert "dns.record.published" not in types
    assert "dns.propagation.checked" not in types  # nothing was published, nothing checked
    [refused] = [e for e in events if e["type"] == "dns.record.refused"]
    assert refused["detail"]["name"] == "_acme-challenge.r.refused.example.test"
    assert refused["detail"]["error"] == failed["error"]["detail"]  # the provider's words
    assert "TSIG" in refused["detail"]["error"] or "NOTAUTH" in refused["detail"]["error"]
    assert "d3JvbmctYnV0" not in str(events)


def test_wildcard_and_apex_keep_both_values_until_validation_ends(
    service: Service, project: Project, lab: LabInfo, tmp_path: Path
) -> None:
    apex = f"wa-{secrets.token_hex(3)}.example.test"
    txt_name = f"_acme-challenge.{apex}"
    marker = tmp_path / "paused"
    service.stop_worker()
    service.start_worker(
        {
            "CERTAUTOPILOT_FAULT_PAUSE": "waiting_propagation",
            "CERTAUTOPILOT_FAULT_MARKER": str(marker),
        }
    )
    try:
        created = service.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": apex, "sans": [f"*.{apex}"]},
        )
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the worker never reached the pause point"
            time.sleep(0.02)
        # Both records are published, at one name, before the check and the validation.
        published = [v for n, v in axfr_txt(lab, "example.test") if n == txt_name]
        assert len(published) == 2 and len(set(published)) == 2
        service.kill_worker()
    finally:
        if service.worker is None or service.worker.poll() is not None:
            service.start_worker()

    issued = service.wait_for(project.slug, created["id"], ("issued", "failed"), timeout=90)
    # Pebble validated both authorizations against the one name: each value was there.
    assert issued["status"] == "issued", issued["error"]
    assert set(issued["sans"]) == {apex, f"*.{apex}"}
    assert not [n for n, _ in axfr_txt(lab, "example.test") if n == txt_name]

    [check] = _events(service, project.slug, created["id"], "dns.propagation.checked")
    records = check["detail"]["records"]
    assert [r["name"] for r in records] == [txt_name, txt_name]
    assert {r["value"] for r in records} == set(published)
    for r in records:  # each value seen next to the other on the server
        assert [s["outcome"] for s in r["servers"]] == ["serves_value"]
        assert sorted(r["servers"][0]["values"]) == sorted(published)
    removed = _events(service, project.slug, created["id"], "dns.record.removed")
    assert sorted(e["detail"]["value"] for e in removed) == sorted(published)
    types = [e["type"] for e in service.timeline(project.slug, created["id"])["events"]]
    assert types.index("acme.authorizations.valid") < types.index("dns.record.removed")


def _publish_by_hand(lab: LabInfo, name: str, value: str) -> None:
    RFC2136Provider(RFC2136Config.model_validate(_rfc2136(lab))).publish_txt(
        "manual.test", name, value, 60
    )


def _set_nameservers(service: Service, zone_id: str, nameservers: list[str]) -> None:
    """What editing the zone in its settings does (zone editing is its own API)."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            zone = session.scalars(select(DnsZone).where(DnsZone.id == zone_id)).one()
            zone.nameservers = nameservers
    finally:
        engine.dispose()


def _wait_message(service: Service, slug: str, cert_id: str, count: int) -> dict[str, Any]:
    """The certificate once the manual check has run ``count`` times."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        checked = _events(service, slug, cert_id, "dns.manual.unchecked")
        checked += _events(service, slug, cert_id, "dns.manual.not_visible")
        checked += _events(service, slug, cert_id, "dns.manual.confirmed")
        if len(checked) >= count:
            # Read after the events: the check that wrote them has committed its message.
            body: dict[str, Any] = service.ok("GET", f"/projects/{slug}/certificates/{cert_id}")
            return body
        time.sleep(0.05)
    pytest.fail(f"the manual check did not run {count} times")


def test_manual_zone_without_nameservers_keeps_waiting_and_says_why(
    service: Service, lab: LabInfo
) -> None:
    # manual.test has no delegation the system resolver knows: NS look-up is NXDOMAIN.
    project = _project(service, lab, {"name": "manual.test", "provider": "manual"})
    slug = project.slug
    common_name = f"m{uuid.uuid4().hex[:6]}.manual.test"
    created = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": common_name},
    )
    waiting = service.wait_for(slug, created["id"], ("awaiting_dns", "failed"))
    assert waiting["status"] == "awaiting_dns", waiting
    [record] = waiting["pending_action"]["records"]

    for attempt in (1, 2):  # "I've added it" twice: each time it says why, and keeps waiting
        service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/dns-confirm", 202)
        body = _wait_message(service, slug, created["id"], attempt)
        assert body["status"] == "awaiting_dns", body
        message = body["pending_action"]["message"]
        assert "cannot find the nameservers of manual.test: NXDOMAIN" in message
        assert "add the zone's nameservers in its settings" in message
        assert "check that the zone is delegated" in message
    unchecked = _events(service, slug, created["id"], "dns.manual.unchecked")
    assert len(unchecked) == 2
    assert "cannot find the nameservers of manual.test" in unchecked[0]["detail"]["zones"][0]
    assert service.timeline(slug, created["id"])["step"] == "awaiting_dns"

    # With the zone's nameservers set: not published yet is said per server...
    bind = f"127.0.0.1:{lab.dns_port}"
    _set_nameservers(service, project.zone_ids["manual.test"], [bind])
    service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/dns-confirm", 202)
    body = _wait_message(service, slug, created["id"], 3)
    assert body["status"] == "awaiting_dns"
    assert f"{record['name']} ({bind}: NXDOMAIN)" in body["pending_action"]["message"]

    # ... and once published, the certificate is issued.
    _publish_by_hand(lab, record["name"], record["value"])
    service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/dns-confirm", 202)
    issued = service.wait_for(slug, created["id"], ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    checks = _events(service, slug, created["id"], "dns.propagation.checked")
    assert [c["detail"]["ok"] for c in checks] == [False, True]
    html = _detail_page(service, slug, created["id"])
    assert _rows(html) == [(bind, "serves_value")]
