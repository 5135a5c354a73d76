"""GET .../certificates/{id}/persist-record: the dns-persist-01 record of each manual-zone name.

Pebble offers no dns-persist-01, so the first test sees "unavailable". The others use an
issuer whose CA is the scripted stub of the unit tests, with a directory that advertises
issuerDomainNames and accountHashPrefix (draft-ietf-acme-dns-persist-02 §3.2, §4.1); the
record itself is put in the lab's BIND by the test, as a person would.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from certautopilot.auth.service import Actor
from certautopilot.db.base import new_id
from certautopilot.db.session import transaction
from certautopilot.deps import AppState
from certautopilot.dns.persist import hashed_account_uri
from certautopilot.issuers import service as issuers
from certautopilot.issuers.acme.keys import generate_account_key, jwk_thumbprint
from certautopilot.issuers.schemas import AcmeIssuerIn, IssuerIn
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "issuers" / "acme"))

from _acme_stub_server import Reply, StubCA, stub_ca

PREFIX = "https://stub.example/account-hash/"


def _put(lab: LabInfo, fqdn: str, value: str) -> None:
    keyring = dns.tsigkeyring.from_text({lab.tsig_name: lab.tsig_secret})
    update = dns.update.UpdateMessage(
        "manual.test", keyring=keyring, keyalgorithm=lab.tsig_algorithm
    )
    update.replace(fqdn + ".", 60, "TXT", f'"{value}"')
    assert dns.query.tcp(update, lab.dns_host, port=lab.dns_port, timeout=5).rcode() == 0


def _records(service: Service, project: str, cert_id: str) -> list[dict[str, object]]:
    body = service.ok("GET", f"/projects/{project}/certificates/{cert_id}/persist-record")
    items: list[dict[str, object]] = body["items"]
    return items


def _create(service: Service, project: str, issuer: str, cn: str, sans: list[str]) -> str:
    cert = service.ok(
        "POST",
        f"/projects/{project}/certificates",
        202,
        json={"issuer": issuer, "common_name": cn, "sans": sans},
    )
    return str(cert["id"])


def test_pebble_offers_no_dns_persist(service: Service, project: Project) -> None:
    label = f"p{secrets.token_hex(3)}"
    cert_id = _create(
        service,
        project.slug,
        project.issuer_id,
        f"{label}.manual.test",
        [f"*.{label}.manual.test", f"{label}.example.test"],
    )
    items = _records(service, project.slug, cert_id)
    assert [i["name"] for i in items] == [f"{label}.manual.test", f"*.{label}.manual.test"]
    for item in items:
        assert item["record_name"] == f"_validation-persist.{label}.manual.test"
        assert item["status"] == "unavailable"
        assert item["value"] is None
        assert "issuerDomainNames" in str(item["detail"])


@pytest.fixture
def stub(service: Service) -> Iterator[StubCA]:
    with stub_ca() as ca:
        meta = {"issuerDomainNames": ["authority.example"], "accountHashPrefix": PREFIX}
        ca.script(
            "/dir",
            Reply(
                body={
                    "newNonce": ca.url("/nonce"),
                    "newAccount": ca.url("/acct"),
                    "newOrder": ca.url("/order"),
                    "meta": meta,
                },
                nonce=False,
            ),
        )
        yield ca


def _stub_issuer(service: Service, project: Project, ca: StubCA) -> tuple[str, str, str]:
    """An ACME issuer row for the stub CA (the API refuses http:// directories)."""
    state: AppState = service.client.app.state.cap  # type: ignore[attr-defined]
    key, pem = generate_account_key()
    account_url = ca.url("/acct/7")
    body = IssuerIn(
        name=f"stub-{secrets.token_hex(3)}",
        kind="acme",
        acme=AcmeIssuerIn(directory_url=ca.directory_url, terms_agreed=True),
    )
    account = issuers.RegisteredAccount(new_id(), account_url, pem)
    with transaction(state.sessions) as session:
        project_id = service.ok("GET", f"/projects/{project.slug}")["id"]
        issuer = issuers.create_acme_issuer(
            session,
            state.kek,
            project_id=project_id,
            body=body,
            account=account,
            actor=Actor(user_id="test", email="admin@example.test", role="admin"),
        )
        issuer_id = issuer.id
    return issuer_id, account_url, jwk_thumbprint(key)


def test_record_to_add_then_ok_then_expiring(
    service: Service, project: Project, lab: LabInfo, stub: StubCA
) -> None:
    issuer_id, account_url, thumbprint = _stub_issuer(service, project, stub)
    label = f"s{secrets.token_hex(3)}"
    base = f"{label}.manual.test"
    cert_id = _create(service, project.slug, issuer_id, base, [f"*.{base}", f"www.{base}"])

    items = {i["name"]: i for i in _records(service, project.slug, cert_id)}
    assert set(items) == {base, f"*.{base}", f"www.{base}"}
    expected = hashed_account_uri(PREFIX, base, thumbprint, account_url)
    # The wildcard and its base share one record, which therefore carries policy=wildcard.
    for name in (base, f"*.{base}"):
        assert items[name]["record_name"] == f"_validation-persist.{base}"
        assert items[name]["value"] == f"authority.example; accounturi={expected}; policy=wildcard"
        assert items[name]["status"] == "missing"
        assert items[name]["issuer_domain"] == "authority.example"
    www = items[f"www.{base}"]
    www_hash = hashed_account_uri(PREFIX, f"www.{base}", thumbprint, account_url)
    assert www["value"] == f"authority.example; accounturi={www_hash}"
    servers = www["servers"]
    assert isinstance(servers, list)
    assert servers[0]["error"] == "NXDOMAIN" and servers[0]["status"] == "missing"

    _put(lab, f"_validation-persist.{base}", str(items[base]["value"]))
    items = {i["name"]: i for i in _records(service, project.slug, cert_id)}
    assert items[base]["status"] == "ok"
    assert items[f"*.{base}"]["status"] == "ok"
    assert items[f"www.{base}"]["status"] == "missing"

    soon = int((datetime.now(UTC) + timedelta(days=5)).timestamp())
    _put(lab, f"_validation-persist.{base}", f"{items[base]['value']}; persistUntil={soon}")
    items = {i["name"]: i for i in _records(service, project.slug, cert_id)}
    assert items[base]["status"] == "expires_soon"
    assert items[base]["persist_until"] is not None
    assert datetime.fromisoformat(str(items[base]["persist_until"])).timestamp() == soon

    _put(lab, f"_validation-persist.{base}", f"authority.example; accounturi={account_url}")
    items = {i["name"]: i for i in _records(service, project.slug, cert_id)}
    assert items[base]["status"] == "wrong_account"


def test_unknown_certificate_is_404(service: Service, project: Project) -> None:
    response = service.call("GET", f"/projects/{project.slug}/certificates/nope/persist-record")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_names_on_automatic_zones_have_no_persist_record(
    service: Service, project: Project
) -> None:
    cert_id = _create(
        service, project.slug, project.issuer_id, f"a{secrets.token_hex(3)}.example.test", []
    )
    assert _records(service, project.slug, cert_id) == []
