"""Real DNS servers for the provider tests: PowerDNS (HTTP API), Knot (RFC 2136), moto Route 53.

Each starts its own process (or, for moto, an in-process HTTP server) on free loopback
ports chosen by the lab's port helpers, in a folder of its own, and ``stop()`` ends only
that process. Zones are under real suffixes (``lexlab.net``, ``example.com``) because
lexicon-style zone handling assumes them; every query still goes to these servers only.
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsigkeyring
import dns.zone
import requests

from certautopilot_lab import procs
from certautopilot_lab.ports import free_port, free_ports

START_SECONDS = 20.0
PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


def _wait(ready: Any, proc: Any, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and procs.exited(proc):
            raise RuntimeError(f"{what} exited during start-up:\n{procs.log_tail(log, 30)}")
        try:
            if ready():
                return
        except (OSError, requests.RequestException, dns.exception.DNSException):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {START_SECONDS:.0f}s:\n{procs.log_tail(log, 30)}")


def txt_at(host: str, port: int, fqdn: str) -> set[str]:
    """The TXT values ``host:port`` answers for ``fqdn`` (a direct, non-recursive query)."""
    query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
    response = dns.query.udp(query, host, port=port, timeout=3)
    found: set[str] = set()
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rdata in rrset:
                found.add(b"".join(rdata.strings).decode())
    return found


def soa_answers(host: str, port: int, zone: str) -> bool:
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    response = dns.query.udp(query, host, port=port, timeout=1)
    return any(r.rdtype == dns.rdatatype.SOA for r in response.answer)


@dataclass
class PowerDNS:
    """PowerDNS Authoritative 4.x, gsqlite3 backend, HTTP API with an API key."""

    base: Path
    zone: str = "lexlab.net"
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    dns_port: int = 0
    api_port: int = 0
    _proc: Any = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> PowerDNS:
        self.base.mkdir(parents=True, exist_ok=True)
        self.dns_port, self.api_port = free_ports(2)
        database = self.base / "pdns.sqlite3"
        database.unlink(missing_ok=True)
        with sqlite3.connect(database) as conn:
            conn.executescript(PDNS_SCHEMA.read_text())
        conf = "\n".join(
            [
                "launch=gsqlite3",
                f"gsqlite3-database={database}",
                "local-address=127.0.0.1",
                f"local-port={self.dns_port}",
                "webserver=yes",
                "webserver-address=127.0.0.1",
                f"webserver-port={self.api_port}",
                "webserver-allow-from=127.0.0.0/8",
                "api=yes",
                f"api-key={self.api_key}",
                f"socket-dir={self.base}",
                "daemon=no",
                "guardian=no",
                "disable-syslog=yes",
                "",
            ]
        )
        (self.base / "pdns.conf").write_text(conf)
        binary = procs.find_binary("pdns_server", "pdns-server")
        log = self.base / "pdns.log"
        self._proc = procs.spawn(
            [binary, f"--config-dir={self.base}"], log_path=log, env={"PATH": "/usr/bin:/bin"}
        )
        _wait(lambda: self._api("GET", "").ok, self._proc, log, "pdns_server")
        self.add_zone(self.zone)
        _wait(lambda: soa_answers("127.0.0.1", self.dns_port, self.zone), self._proc, log, "pdns")
        return self

    def add_zone(self, zone: str) -> None:
        body = {"name": f"{zone}.", "kind": "Native", "nameservers": [f"ns1.{zone}."]}
        response = self._api("POST", "/zones", json=body)
        assert response.status_code == 201, response.text

    def txt_in(self, zone: str) -> list[tuple[str, str]]:
        response = self._api("GET", f"/zones/{zone}.")
        response.raise_for_status()
        return sorted(
            (rrset["name"].rstrip("."), record["content"].strip('"'))
            for rrset in response.json()["rrsets"]
            if rrset["type"] == "TXT"
            for record in rrset["records"]
        )

    def _api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            return session.request(
                method,
                f"{self.api_url}/api/v1/servers/localhost{path}",
                headers={"X-API-Key": self.api_key},
                timeout=5,
                **kwargs,
            )

    def txt_records(self) -> list[tuple[str, str]]:
        """Every TXT record of the zone as the API lists it: ``(owner, value)``."""
        return self.txt_in(self.zone)

    def settings(self, **changes: Any) -> dict[str, Any]:
        return {"auth_token": self.api_key, "pdns_server": self.api_url, **changes}

    def stop(self) -> None:
        if self._proc is not None:
            procs.stop_child(self._proc)


@dataclass
class Knot:
    """Knot DNS 3.x accepting TSIG-signed RFC 2136 updates and AXFR for one zone."""

    base: Path
    zone: str = "example.com"
    key_name: str = "knot-key"
    secret: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    port: int = 0
    _proc: Any = None

    def start(self) -> Knot:
        zones = self.base / "zones"
        zones.mkdir(parents=True, exist_ok=True)
        (self.base / "db").mkdir(exist_ok=True)
        self.port = free_port()
        (zones / f"{self.zone}.zone").write_text(
            f"$ORIGIN {self.zone}.\n$TTL 60\n"
            f"@ IN SOA ns1.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 60\n"
            f"@ IN NS ns1.{self.zone}.\nns1 IN A 127.0.0.1\n"
        )
        conf = self.base / "knot.conf"
        conf.write_text(
            f"""server:
    rundir: "{self.base}"
    pidfile: "{self.base}/knot.pid"
    listen: 127.0.0.1@{self.port}
control:
    listen: "{self.base}/knot.sock"
log:
  - target: stdout
    any: info
database:
    storage: "{self.base}/db"
key:
  - id: {self.key_name}
    algorithm: hmac-sha256
    secret: {self.secret}
acl:
  - id: update_acl
    key: {self.key_name}
    action: [update, transfer]
template:
  - id: default
    storage: "{zones}"
    file: "%s.zone"
zone:
  - domain: {self.zone}
    acl: update_acl
"""
        )
        binary = procs.find_binary("knotd", "knot")
        log = self.base / "knot.log"
        self._proc = procs.spawn([binary, "-c", str(conf)], log_path=log, env={"PATH": "/usr/bin"})
        _wait(lambda: soa_answers("127.0.0.1", self.port, self.zone), self._proc, log, "knotd")
        return self

    def rfc2136_settings(self) -> dict[str, Any]:
        return {
            "server": "127.0.0.1",
            "port": self.port,
            "tsig_name": self.key_name,
            "tsig_algorithm": "hmac-sha256",
            "tsig_secret": self.secret,
            "timeout_seconds": 3,
        }

    def axfr_txt(self) -> list[tuple[str, str]]:
        keyring = dns.tsigkeyring.from_text({self.key_name: self.secret})
        xfr = dns.query.xfr(
            "127.0.0.1",
            self.zone,
            port=self.port,
            keyring=keyring,
            keyname=self.key_name,
            keyalgorithm="hmac-sha256",
            timeout=5.0,
            lifetime=10.0,
            relativize=False,
        )
        parsed = dns.zone.from_xfr(xfr, relativize=False)
        return sorted(
            (name.to_text(omit_final_dot=True), b"".join(rdata.strings).decode())
            for name, rdataset in parsed.iterate_rdatasets(dns.rdatatype.TXT)
            for rdata in rdataset
        )

    def stop(self) -> None:
        if self._proc is not None:
            procs.stop_child(self._proc)


@dataclass
class MotoRoute53:
    """moto's server standing in for the Route 53 API (it serves no DNS)."""

    zone: str = "example.com"
    port: int = 0
    zone_id: str = ""
    _server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoRoute53:
        from moto.server import ThreadedMotoServer

        self.port = free_port(udp=False)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        created = self.client().create_hosted_zone(
            Name=f"{self.zone}.", CallerReference=secrets.token_hex(8)
        )
        self.zone_id = created["HostedZone"]["Id"].split("/")[-1]
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "route53",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        )

    def txt_records(self) -> list[tuple[str, str]]:
        pages = self.client().list_resource_record_sets(HostedZoneId=self.zone_id)
        return sorted(
            (rrset["Name"].rstrip("."), record["Value"].strip('"'))
            for rrset in pages["ResourceRecordSets"]
            if rrset["Type"] == "TXT"
            for record in rrset["ResourceRecords"]
        )

    def settings(self) -> dict[str, Any]:
        return {"auth_access_key": "testing", "auth_access_secret": "testing-secret-value"}

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
