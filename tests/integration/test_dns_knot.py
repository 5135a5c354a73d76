"""End to end through Pebble with a DNS server other than the lab's BIND.

A second Pebble (the ACME tests' ``Pebble`` helper, given the server's DNS port) validates
against Knot DNS; the zone is created through the API with provider rfc2136 pointing at
Knot. A wildcard + apex certificate (one TXT name, two values) is issued and renewed, and
afterwards the zone holds no TXT record at all (read by AXFR).

The same test runs for PowerDNS (its HTTP API, through dns-lexicon's powerdns provider),
with the zone body ``{"name", "provider": "powerdns", "settings": {...}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Service
from tests.integration._pebble_fixture import Pebble, binaries_present, make_tls
from tests.integration.dns_servers import Knot, PowerDNS

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not binaries_present(), reason="needs Debian package pebble"),
]


@dataclass
class DNSBackend:
    zone: str
    dns_port: int
    zone_body: dict[str, Any]
    txt_records: Callable[[], list[tuple[str, str]]]


@pytest.fixture(scope="module")
def knot_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DNSBackend]:
    server = Knot(tmp_path_factory.mktemp("knot-e2e")).start()
    settings = server.rfc2136_settings()
    settings.pop("timeout_seconds")
    body = {
        "name": server.zone,
        "provider": "rfc2136",
        "nameservers": [f"127.0.0.1:{server.port}"],
        "propagation_timeout_seconds": 30,
        "rfc2136": settings,
    }
    yield DNSBackend(server.zone, server.port, body, server.axfr_txt)
    server.stop()


@pytest.fixture(scope="module")
def powerdns_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DNSBackend]:
    server = PowerDNS(tmp_path_factory.mktemp("pdns-e2e")).start()
    body = {
        "name": server.zone,
        "provider": "powerdns",
        "nameservers": [f"127.0.0.1:{server.dns_port}"],
        "propagation_timeout_seconds": 30,
        "settings": server.settings(),
    }
    yield DNSBackend(server.zone, server.dns_port, body, server.txt_records)
    server.stop()


@pytest.mark.parametrize(
    "backend_name",
    ["knot", "powerdns"],
)
def test_wildcard_and_apex_issue_and_renew_leave_no_txt(
    service: Service,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend_name: str,
) -> None:
    backend: DNSBackend = request.getfixturevalue(f"{backend_name}_backend")
    tls = make_tls(tmp_path / "tls")
    pebble = Pebble(tmp_path / "pebble", tls, backend.dns_port)
    try:
        slug = f"p-{uuid.uuid4().hex[:10]}"
        service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Project {slug}"})
        issuer = service.ok(
            "POST",
            f"/projects/{slug}/issuers",
            201,
            json={
                "name": f"pebble-{backend_name}",
                "kind": "acme",
                "acme": {
                    "directory_url": pebble.directory_url,
                    "contact_email": "ops@example.test",
                    "terms_agreed": True,
                    "ca_bundle_pem": tls.ca_pem,
                },
            },
        )
        service.ok("POST", f"/projects/{slug}/zones", 201, json=backend.zone_body)
        created = service.ok(
            "POST",
            f"/projects/{slug}/certificates",
            202,
            json={
                "issuer": issuer["id"],
                "common_name": backend.zone,
                "sans": [f"*.{backend.zone}"],
            },
        )
        first = service.wait_for(slug, created["id"], ("issued", "failed"))
        assert first["status"] == "issued", first["error"]
        assert set(first["sans"]) == {backend.zone, f"*.{backend.zone}"}
        assert backend.txt_records() == []

        second, renewals = service.renew_validating(slug, created["id"])
        assert second["status"] == "issued", second["error"]
        assert second["current"]["serial"] != first["current"]["serial"]

        types = [e["type"] for e in service.timeline(slug, created["id"])["events"]]
        assert types.count("cert.issued") == 1 and types.count("cert.renewed") == renewals
        assert types.count("dns.record.published") >= 4  # two values, two orders
        assert backend.txt_records() == []  # every TXT record was removed
    finally:
        pebble.stop()
