"""CNAME delegation end to end against the lab's BIND and Pebble.

The lab's ``manual.test`` zone (a manual zone in the project: no credentials) holds
``_acme-challenge.delegated.manual.test CNAME _acme-challenge.delegated.manual.test.example.test.``
(lab configs). An authoritative-only BIND does not chase a CNAME into another zone, and a
CA asks a recursive resolver anyway, so the issuing test runs its own Pebble behind a
forwarding BIND resolver (``Resolver``) that follows the CNAME into ``example.test``, the
zone with TSIG credentials: the certificate issues on its own, the TXT records are written
and removed in example.test. The lab's BIND also serves a CNAME loop and a CNAME that ends
outside every project zone, for the preflight answers.

A name whose zone is on Knot (a manual zone here) is delegated into example.test on BIND
and into a PowerDNS zone (lexicon's powerdns provider).
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt
from tests.conftest import Project, Service
from tests.integration._pebble_fixture import (
    Pebble,
    _Process,
    _wait_until,
    binaries_present,
    free_port,
    make_tls,
)
from tests.integration.dns_servers import Knot, PowerDNS

pytestmark = pytest.mark.lab
NAMED = shutil.which("named") or "/usr/sbin/named"

DELEGATED_TO = "_acme-challenge.delegated.manual.test.example.test"


def test_preflight_shows_where_each_challenge_goes(service: Service, project: Project) -> None:
    p = project.slug
    result = service.ok(
        "POST",
        f"/projects/{p}/certificates/preflight",
        json={
            "issuer": project.issuer_id,
            "common_name": "delegated.manual.test",
            "sans": ["*.delegated.manual.test", "www.example.test", "shop.nowhere.test"],
        },
    )
    by_name = {c["name"]: c for c in result["challenges"]}
    for name in ("delegated.manual.test", "*.delegated.manual.test"):
        assert by_name[name] == {
            "name": name,
            "record_name": DELEGATED_TO,
            "zone": "example.test",
            "delegated_from": "_acme-challenge.delegated.manual.test",
            "delegate": None,
        }
    assert by_name["www.example.test"]["zone"] == "example.test"
    assert by_name["www.example.test"]["delegated_from"] is None
    assert by_name["shop.nowhere.test"]["zone"] is None
    assert by_name["shop.nowhere.test"]["delegate"] == {
        "cname": "_acme-challenge.shop.nowhere.test",
        "target": "_acme-challenge.shop.nowhere.test.example.test",
    }
    assert [w["code"] for w in result["warnings"]] == ["dns.no_zone"]
    # a delegated manual name needs no hand-made record: it renews on its own
    only_delegated = service.ok(
        "POST",
        f"/projects/{p}/certificates/preflight",
        json={"issuer": project.issuer_id, "common_name": "delegated.manual.test"},
    )
    assert only_delegated["auto_renew"] is True and only_delegated["warnings"] == []

    refused = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={"issuer": project.issuer_id, "common_name": "shop.nowhere.test"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "common_name"
    assert "delegate instead: create the CNAME _acme-challenge.shop.nowhere.test" in refused.text


def test_cname_loop_is_a_422_naming_the_field(service: Service, project: Project) -> None:
    response = service.call(
        "POST",
        f"/projects/{project.slug}/certificates/preflight",
        json={
            "issuer": project.issuer_id,
            "common_name": "www.example.test",
            "sans": ["loop.manual.test"],
        },
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "sans"
    assert (
        "loops: _acme-challenge.loop.manual.test -> _acme-challenge.loop2.manual.test"
        in (error["message"])
    )


def test_broken_delegation_is_a_warning_not_a_failed_order(
    service: Service, project: Project
) -> None:
    p = project.slug
    body = {"issuer": project.issuer_id, "common_name": "broken.manual.test"}
    result = service.ok("POST", f"/projects/{p}/certificates/preflight", json=body)
    [warning] = result["warnings"]
    assert warning["code"] == "dns.delegation_broken" and warning["field"] == "common_name"
    assert (
        "_acme-challenge.broken.elsewhere.invalid, which is in no DNS zone" in (warning["message"])
    )
    refused = service.call("POST", f"/projects/{p}/certificates", json=body)
    assert refused.status_code == 422, refused.text
    assert [w["code"] for w in refused.json()["warnings"]] == ["dns.delegation_broken"]
    listed = service.ok("GET", f"/projects/{p}/certificates", params={"q": "broken.manual.test"})
    assert listed["items"] == []  # no order was placed


class Resolver:
    """A recursive BIND that forwards every query to the given authoritative servers (a
    CA's resolver, in small): it follows a CNAME from one zone into another."""

    def __init__(
        self, workdir: Path, forwarders: dict[str, int], default: int, port: int = 0
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        zones = "".join(
            f'zone "{z}" {{ type forward; forward only; forwarders {{ 127.0.0.1 port {p}; }}; }};\n'
            for z, p in forwarders.items()
        )
        conf = workdir / "named.conf"
        conf.write_text(
            f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    lock-file "{workdir}/named.lock";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ 127.0.0.0/8; }};
    allow-query {{ 127.0.0.0/8; }};
    forward only;
    forwarders {{ 127.0.0.1 port {default}; }};
    dnssec-validation no;
    max-cache-ttl 1;
    max-ncache-ttl 1;
}};
controls {{ }};
{zones}"""
        )
        argv = [NAMED, "-f", "-4", "-c", str(conf)]
        self.process = _Process("named-resolver", argv, workdir / "named.out", {})
        _wait_until(self._ready, self.process, "named resolver")

    def _ready(self) -> bool:
        query = dns.message.make_query("example.test", "SOA")
        try:
            return bool(dns.query.udp(query, "127.0.0.1", port=self.port, timeout=1).answer)
        except (OSError, dns.exception.DNSException):  # not listening yet
            return False

    def stop(self) -> None:
        self.process.stop()


@contextlib.contextmanager
def pebble_behind_resolver(
    workdir: Path, forwarders: dict[str, int], default: int
) -> Iterator[Pebble]:
    """A Pebble that validates through a recursive resolver in front of the given servers."""
    resolver = Resolver(workdir / "resolver", forwarders, default)
    try:
        pebble = Pebble(workdir / "pebble", make_tls(workdir / "tls"), resolver.port)
        try:
            yield pebble
        finally:
            pebble.stop()
    finally:
        resolver.stop()


def add_issuer(service: Service, slug: str, pebble: Pebble) -> str:
    issuer = service.ok(
        "POST",
        f"/projects/{slug}/issuers",
        201,
        json={
            "name": f"pebble-resolving-{uuid.uuid4().hex[:6]}",
            "kind": "acme",
            "acme": {
                "directory_url": pebble.directory_url,
                "contact_email": "ops@example.test",
                "terms_agreed": True,
                "ca_bundle_pem": pebble.tls.ca_pem,
            },
        },
    )
    return str(issuer["id"])


def issue_and_check(
    service: Service, slug: str, issuer_id: str, name: str, delegated_to: str
) -> list[dict[str, Any]]:
    """Issues ``name`` + ``*.name``; asserts both TXT values went to ``delegated_to`` and
    were removed, and that nothing waited for a hand-made record. The timeline's events."""
    created = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer_id, "common_name": name, "sans": [f"*.{name}"]},
    )
    assert created["auto_renew"] is True
    body = service.wait_for(slug, created["id"], ("issued", "failed", "awaiting_dns"))
    events: list[dict[str, Any]] = service.timeline(slug, created["id"])["events"]
    assert body["status"] == "issued", (body["error"], events)
    published = [e["detail"] for e in events if e["type"] == "dns.record.published"]
    removed = [e["detail"] for e in events if e["type"] == "dns.record.removed"]
    # wildcard + apex: one TXT name, two values, written at the target and removed
    assert [d["name"] for d in published] == [delegated_to, delegated_to]
    assert len({d["value"] for d in published}) == 2
    assert sorted(d["value"] for d in removed) == sorted(d["value"] for d in published)
    assert not any(e["type"].startswith("dns.manual") for e in events)
    return events


@pytest.mark.skipif(not binaries_present(), reason="needs Debian package pebble")
def test_manual_zone_name_delegated_to_bind_zone_issues(
    service: Service, project: Project, lab: LabInfo, tmp_path: Path
) -> None:
    with pebble_behind_resolver(tmp_path, {}, lab.dns_port) as pebble:
        issuer_id = add_issuer(service, project.slug, pebble)
        issue_and_check(service, project.slug, issuer_id, "delegated.manual.test", DELEGATED_TO)
    leftovers = [
        n
        for zone in ("example.test", "manual.test")
        for n, _ in axfr_txt(lab, zone)
        if "delegated" in n
    ]
    assert leftovers == []


@pytest.mark.skipif(
    not (binaries_present() and shutil.which("knotd")), reason="needs pebble and knot"
)
@pytest.mark.parametrize(
    "target_server",
    ["bind", "powerdns"],
)
def test_name_on_another_server_delegated_to_a_zone_with_credentials_issues(
    service: Service, project: Project, lab: LabInfo, tmp_path: Path, target_server: str
) -> None:
    """The name's zone is on Knot and in the project as a manual zone (no credentials);
    its ``_acme-challenge`` CNAME points into example.test on the lab's BIND, or into a
    PowerDNS zone reached through lexicon's powerdns provider."""
    knot = Knot(tmp_path / "knot").start()
    pdns = PowerDNS(tmp_path / "pdns").start() if target_server == "powerdns" else None
    try:
        forwarders = {knot.zone: knot.port}
        target_zone = "example.test"
        if pdns is not None:
            target_zone = pdns.zone
            forwarders[pdns.zone] = pdns.dns_port
            service.ok(
                "POST",
                f"/projects/{project.slug}/zones",
                201,
                json={
                    "name": pdns.zone,
                    "provider": "powerdns",
                    "nameservers": [f"127.0.0.1:{pdns.dns_port}"],
                    "propagation_timeout_seconds": 30,
                    "settings": pdns.settings(),
                },
            )
        source = f"_acme-challenge.www.{knot.zone}"
        target = f"{source}.{target_zone}"
        update = dns.update.UpdateMessage(
            knot.zone,
            keyring=dns.tsigkeyring.from_text({knot.key_name: knot.secret}),
            keyname=knot.key_name,
            keyalgorithm="hmac-sha256",
        )
        update.replace(source + ".", 60, "CNAME", target + ".")
        response = dns.query.tcp(update, "127.0.0.1", port=knot.port, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR
        service.ok(
            "POST",
            f"/projects/{project.slug}/zones",
            201,
            json={
                "name": knot.zone,
                "provider": "manual",
                "nameservers": [f"127.0.0.1:{knot.port}"],
            },
        )
        with pebble_behind_resolver(tmp_path, forwarders, lab.dns_port) as pebble:
            issuer_id = add_issuer(service, project.slug, pebble)
            issue_and_check(service, project.slug, issuer_id, f"www.{knot.zone}", target)
        assert knot.axfr_txt() == []
        if pdns is not None:
            assert pdns.txt_records() == []
        assert [n for n, _ in axfr_txt(lab, "example.test") if knot.zone in n] == []
    finally:
        if pdns is not None:
            pdns.stop()
        knot.stop()


def _set_cname(knot: Knot, source: str, target: str | None) -> None:
    """Adds (or, with None, deletes) ``source CNAME target`` on Knot through RFC 2136."""
    update = dns.update.UpdateMessage(
        knot.zone,
        keyring=dns.tsigkeyring.from_text({knot.key_name: knot.secret}),
        keyname=knot.key_name,
        keyalgorithm="hmac-sha256",
    )
    if target is None:
        update.delete(source + ".", "CNAME")
    else:
        update.replace(source + ".", 60, "CNAME", target + ".")
    response = dns.query.tcp(update, "127.0.0.1", port=knot.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR


@pytest.mark.skipif(
    not (binaries_present() and shutil.which("knotd")), reason="needs pebble and knot"
)
def test_renewal_follows_a_cname_added_after_issuance(
    service: Service, project: Project, lab: LabInfo, tmp_path: Path
) -> None:
    """Issued with the TXT record in the name's own zone (Knot, with credentials); then
    ``_acme-challenge.www`` becomes a CNAME into example.test on the lab's BIND: the renewal
    writes there. Pointed outside every project zone, the next renewal fails before any
    order, naming the name and the CNAME's target."""
    knot = Knot(tmp_path / "knot").start()
    try:
        settings = knot.rfc2136_settings()
        settings.pop("timeout_seconds")
        service.ok(
            "POST",
            f"/projects/{project.slug}/zones",
            201,
            json={
                "name": knot.zone,
                "provider": "rfc2136",
                "nameservers": [f"127.0.0.1:{knot.port}"],
                "propagation_timeout_seconds": 30,
                "rfc2136": settings,
            },
        )
        name = f"www.{knot.zone}"
        source = f"_acme-challenge.{name}"
        target = f"{source}.example.test"
        slug = project.slug
        forwarders = {knot.zone: knot.port}
        resolver = Resolver(tmp_path / "resolver", forwarders, lab.dns_port)
        pebble = Pebble(tmp_path / "pebble", make_tls(tmp_path / "tls"), resolver.port)
        try:
            issuer_id = add_issuer(service, slug, pebble)
            created = service.ok(
                "POST",
                f"/projects/{slug}/certificates",
                202,
                json={"issuer": issuer_id, "common_name": name},
            )
            first = service.wait_for(slug, created["id"], ("issued", "failed"))
            assert first["status"] == "issued", first["error"]
            events = service.timeline(slug, created["id"])["events"]
            [own] = [e["detail"] for e in events if e["type"] == "dns.record.published"]
            assert (own["name"], own["zone"], own["delegated_from"]) == (source, knot.zone, None)

            _set_cname(knot, source, target)
            # the CA's resolver still holds the old TXT for its TTL: a fresh one stands for
            # that cache expiring (the service itself asks the zone's servers directly)
            resolver.stop()
            resolver = Resolver(tmp_path / "resolver2", forwarders, lab.dns_port, resolver.port)
            second, renewals = service.renew_validating(slug, created["id"])
            assert second["status"] == "issued", second["error"]
            assert second["current"]["serial"] != first["current"]["serial"]
            events = service.timeline(slug, created["id"])["events"]
            published = [e["detail"] for e in events if e["type"] == "dns.record.published"]
            assert len(published) == 2
            renewal = next(d for d in published if d["value"] != own["value"])
            assert (renewal["name"], renewal["zone"], renewal["delegated_from"]) == (
                target,
                "example.test",
                source,
            )
            assert knot.axfr_txt() == []
            assert [n for n, _ in axfr_txt(lab, "example.test") if knot.zone in n] == []

            _set_cname(knot, source, f"{source}.elsewhere.invalid")
            service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/renew", 202)
            third = service.wait_for(slug, created["id"], ("issued", "failed"))
            assert third["status"] == "failed"
            assert f"{source} is a CNAME to {source}.elsewhere.invalid" in third["error"]["detail"]
            events = service.timeline(slug, created["id"])["events"]
            orders = sum(e["type"] == "acme.order.created" for e in events)
            assert orders == 1 + renewals  # none for the refused renewal
        finally:
            pebble.stop()
            resolver.stop()
    finally:
        knot.stop()
