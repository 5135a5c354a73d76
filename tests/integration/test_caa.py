"""CAA against real records: the test publishes CAA records in the lab's BIND through RFC
2136 (as a DNS admin would), and preflight reads them on the zone's authoritative servers -
climbing from a name to the parent that holds them - and warns when they do not allow the
issuer's CAA identity, its ACME account or DNS-01; the zone's CAA panel (API and web page)
shows them and the records that would allow the project's issuers.

Each test writes under a label of its own below example.test and removes what it wrote,
so the session's other tests (whose names have no CAA) are not affected."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from certautopilot.dns.schemas import ZoneIn
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, sign_in_client, store_zone_unchecked

IDENTITY = "pebble.lab.test"


class Caa:
    """Writes CAA records at names under example.test in the lab's BIND (RFC 2136 + TSIG)."""

    def __init__(self, lab: LabInfo) -> None:
        self.lab = lab
        self.written: set[str] = set()

    def _send(self, update: dns.update.UpdateMessage) -> None:
        answer = dns.query.tcp(update, self.lab.dns_host, port=self.lab.dns_port, timeout=5)
        assert answer.rcode() == 0, answer

    def _update(self) -> dns.update.UpdateMessage:
        keyring = dns.tsigkeyring.from_text({self.lab.tsig_name: self.lab.tsig_secret})
        return dns.update.UpdateMessage(
            "example.test", keyring=keyring, keyalgorithm=self.lab.tsig_algorithm
        )

    def set(self, name: str, *records: str) -> None:
        update = self._update()
        update.replace(name + ".", 60, "CAA", *records)
        self._send(update)
        self.written.add(name)

    def remove_all(self) -> None:
        for name in self.written:
            update = self._update()
            update.delete(name + ".", "CAA")
            self._send(update)


@pytest.fixture
def caa(lab: LabInfo) -> Iterator[Caa]:
    records = Caa(lab)
    try:
        yield records
    finally:
        records.remove_all()


def _preflight(service: Service, p: Project, *names: str) -> dict:
    body: dict = service.ok(
        "POST",
        f"/projects/{p.slug}/certificates/preflight",
        json={"issuer": p.issuer_id, "common_name": names[0], "sans": list(names[1:])},
    )
    return body


def _caa_of(body: dict) -> dict[str, dict]:
    return {c["name"]: c for c in body["caa"]}


def _warned(body: dict) -> list[str]:
    return [w["message"] for w in body["warnings"] if w["code"] == "caa.not_allowed"]


def test_preflight_reads_caa_on_the_zones_servers_and_warns(
    service: Service, project: Project, caa: Caa
) -> None:
    p = project
    base = f"caa{secrets.token_hex(4)}.example.test"
    www, wild = f"www.{base}", f"*.{base}"
    account = service.ok("GET", f"/projects/{p.slug}/issuers/{p.issuer_id}")["acme"]["account_url"]

    clean = _preflight(service, p, www)
    assert _caa_of(clean)[www]["allowed"] is True and _caa_of(clean)[www]["found_at"] is None
    assert _warned(clean) == []

    # Pebble's directory names no caaIdentities: the issuer's identity is unknown until set
    caa.set(base, '0 issue "other-ca.test"')
    unknown = _preflight(service, p, www)
    assert _caa_of(unknown)[www]["found_at"] == base  # climbed from www to its parent
    assert _caa_of(unknown)[www]["records"] == ['0 issue "other-ca.test"']
    assert "no CAA identity" in _warned(unknown)[0]
    service.ok(
        "PATCH",
        f"/projects/{p.slug}/issuers/{p.issuer_id}",
        json={"acme": {"caa_identity": IDENTITY}},
    )
    other = _preflight(service, p, www)
    assert [w["field"] for w in other["warnings"]] == ["issuer"]
    assert _warned(other) == [
        f"{www}: CAA at {base} allows only other-ca.test to issue (issue), not {IDENTITY}"
    ]
    # an operator's request is refused before anything is ordered (422 naming the field)
    operator = f"op-{secrets.token_hex(3)}@example.test"
    service.ok(
        "POST", f"/projects/{p.slug}/members", 201, json={"email": operator, "role": "operator"}
    )
    refused = service.call(
        "POST",
        f"/projects/{p.slug}/certificates",
        token=service.token_for(operator),
        json={"issuer": p.issuer_id, "common_name": www},
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "issuer" in [e["field"] for e in refused.json()["errors"]]
    assert service.ok("GET", f"/projects/{p.slug}/certificates?q={base}")["items"] == []

    # allowed for this account and DNS-01; wildcards forbidden by issuewild
    caa.set(
        base,
        f'0 issue "{IDENTITY}; accounturi={account}; validationmethods=dns-01"',
        '0 issuewild ";"',
    )
    mixed = _preflight(service, p, www, wild)
    assert _caa_of(mixed)[www]["allowed"] is True
    assert _caa_of(mixed)[wild]["allowed"] is False
    assert len(_warned(mixed)) == 1 and _warned(mixed)[0].startswith(f"{wild}: ")

    # the closest records win: a record at www itself overrides its parent's
    caa.set(www, f'0 issue "{IDENTITY}; accounturi=https://elsewhere.test/acct/1"')
    theirs = _preflight(service, p, www)
    assert _caa_of(theirs)[www]["found_at"] == www
    assert "another ACME account" in _warned(theirs)[0]
    caa.set(www, f'0 issue "{IDENTITY}; validationmethods=http-01"')
    assert "does not allow dns-01" in _warned(_preflight(service, p, www))[0]


def test_the_zone_caa_panel_shows_records_and_suggests_them(
    service: Service, project: Project, lab: LabInfo, caa: Caa
) -> None:
    p = project
    base = f"caaz{secrets.token_hex(4)}.example.test"
    zone = store_zone_unchecked(
        service,
        p.slug,
        ZoneIn.model_validate(
            {
                "name": base,
                "provider": "rfc2136",
                "nameservers": [f"127.0.0.1:{lab.dns_port}"],
                "rfc2136": {
                    "server": "127.0.0.1",
                    "port": lab.dns_port,
                    "tsig_name": lab.tsig_name,
                    "tsig_algorithm": lab.tsig_algorithm,
                    "tsig_secret": lab.tsig_secret,
                },
            }
        ),
    )
    url = f"/projects/{p.slug}/zones/{zone['id']}/caa"
    service.ok(
        "PATCH",
        f"/projects/{p.slug}/issuers/{p.issuer_id}",
        json={"acme": {"caa_identity": IDENTITY}},
    )
    empty = service.ok("GET", url)
    assert empty["found_at"] is None and empty["records"] == [] and empty["error"] is None
    assert [(i["issuer"], i["allowed"]) for i in empty["issuers"]] == [("pebble", True)]
    account = empty["issuers"][0]["account_url"]
    value = f"{IDENTITY}; accounturi={account}; validationmethods=dns-01"
    assert empty["suggested"] == [
        f'{base}. CAA 0 issue "{value}"',
        f'{base}. CAA 0 issuewild "{value}"',
    ]

    caa.set(base, '0 issue "letsencrypt.org"')
    refused = service.ok("GET", url)
    assert refused["found_at"] == base and refused["records"] == ['0 issue "letsencrypt.org"']
    assert refused["issuers"][0]["allowed"] is False

    # the suggested records, published as they are, allow the issuer
    caa.set(base, *(line.split(" CAA ", 1)[1] for line in empty["suggested"]))
    assert service.ok("GET", url)["issuers"][0]["allowed"] is True

    client = service.client
    try:
        sign_in_client(service)
        page = client.get(f"/p/{p.slug}/settings/zones/{zone['id']}/caa")
        assert page.status_code == 200, page.text
        assert 'data-testid="zone-caa"' in page.text
        assert page.text.count('data-testid="caa-record"') == 2
        assert 'data-allowed="yes"' in page.text
        assert f"{base}. CAA 0 issuewild" in page.text
    finally:
        client.cookies.clear()
