"""The dns-persist-01 challenge path, end to end through the worker, against the scripted CA.

Pebble offers no dns-persist-01, so the CA here is the scripted stub of the unit tests, made
stateful: authorizations turn valid once a challenge is answered, and the finalize step signs
the CSR it receives. The persist record lives in the lab's real BIND (put there by the test,
as a person would); the service reads it on the zone's authoritative server before answering.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.query
import dns.tsigkeyring
import dns.update
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certautopilot.auth.service import Actor
from certautopilot.db.base import new_id
from certautopilot.db.session import transaction
from certautopilot.deps import AppState
from certautopilot.dns.persist import AccountBinding, build_record
from certautopilot.issuers import service as issuers
from certautopilot.issuers.acme.keys import generate_account_key, jwk_thumbprint
from certautopilot.issuers.schemas import AcmeIssuerIn, IssuerIn
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "issuers" / "acme"))

from _acme_stub_server import Reply, StubCA

PREFIX = "https://stub.example/account-hash/"
ISSUER_DOMAIN = "authority.example"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PersistCA(StubCA):
    """One order at a time; offers dns-persist-01 beside dns-01 when ``offer_persist``."""

    def __init__(self, *, offer_persist: bool, offer_dns01: bool = True) -> None:
        self.offer_persist = offer_persist
        self.offer_dns01 = offer_dns01
        self.answered: list[str] = []
        self.identifiers: list[str] = []
        self.chain_pem = ""
        self._state_lock = threading.Lock()
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        super().__init__()
        self.script(
            "/dir",
            Reply(
                body={
                    "newNonce": self.url("/nonce"),
                    "newAccount": self.url("/acct"),
                    "newOrder": self.url("/order"),
                    "meta": {"issuerDomainNames": [ISSUER_DOMAIN], "accountHashPrefix": PREFIX},
                },
                nonce=False,
            ),
        )

    # -- the CA's state ----------------------------------------------------------------
    def _authz_valid(self, i: int) -> bool:
        return any(url.endswith(f"/{i}") for url in self.answered)

    def _order(self) -> dict[str, Any]:
        n = len(self.identifiers)
        all_valid = all(self._authz_valid(i) for i in range(n))
        status = "valid" if self.chain_pem else ("ready" if all_valid else "pending")
        body: dict[str, Any] = {
            "status": status,
            "identifiers": [{"type": "dns", "value": v} for v in self.identifiers],
            "authorizations": [self.url(f"/authz/{i}") for i in range(n)],
            "finalize": self.url("/finalize"),
        }
        if self.chain_pem:
            body["certificate"] = self.url("/cert")
        return body

    def _authz(self, i: int) -> dict[str, Any]:
        value = self.identifiers[i]
        valid = self._authz_valid(i)
        chall_status = "valid" if valid else "pending"
        challenges = [
            {
                "type": "dns-01",
                "url": self.url(f"/chall/dns/{i}"),
                "status": chall_status,
                "token": TOKEN,
            }
        ]
        if not self.offer_dns01:
            challenges = []
        if self.offer_persist:
            challenges.insert(
                0,
                {
                    "type": "dns-persist-01",
                    "url": self.url(f"/chall/persist/{i}"),
                    "status": chall_status,
                    "issuerDomainNames": [ISSUER_DOMAIN],
                },
            )
        body: dict[str, Any] = {
            "status": "valid" if valid else "pending",
            "identifier": {"type": "dns", "value": value.removeprefix("*.")},
            "challenges": challenges,
        }
        if value.startswith("*."):
            body["wildcard"] = True
        return body

    def _sign(self, csr_der: bytes) -> str:
        csr = x509.load_der_x509_csr(csr_der)
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Persist stub CA")])
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(name)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(san.value, critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        return leaf.public_bytes(serialization.Encoding.PEM).decode()

    def _next(self, path: str) -> Reply:
        with self._state_lock:
            seen = self.seen[-1]
            payload = json.loads(seen.payload) if seen.payload else None
            if path == "/order" and seen.method == "POST":
                self.identifiers = [i["value"] for i in payload["identifiers"]]
                return Reply(201, self._order(), {"Location": self.url("/order/1")})
            if path == "/order/1":
                return Reply(200, self._order())
            if path.startswith("/authz/"):
                return Reply(200, self._authz(int(path.rsplit("/", 1)[1])))
            if path.startswith("/chall/"):
                if payload == {}:
                    self.answered.append(path)
                kind = "dns-persist-01" if "/persist/" in path else "dns-01"
                body = {"type": kind, "url": self.url(path), "status": "processing"}
                if kind == "dns-01":
                    body["token"] = TOKEN
                else:
                    body["issuerDomainNames"] = [ISSUER_DOMAIN]
                return Reply(200, body)
            if path == "/finalize":
                self.chain_pem = self._sign(_b64d(payload["csr"]))
                return Reply(200, self._order())
            if path == "/cert":
                return Reply(200, self.chain_pem, content_type="application/pem-certificate-chain")
        return super()._next(path)


@pytest.fixture
def persist_ca() -> Iterator[PersistCA]:
    ca = PersistCA(offer_persist=True)
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture
def plain_ca() -> Iterator[PersistCA]:
    ca = PersistCA(offer_persist=False)
    try:
        yield ca
    finally:
        ca.stop()


def _stub_issuer(service: Service, project: Project, ca: StubCA) -> tuple[str, AccountBinding]:
    """An ACME issuer row for the stub CA (the API refuses http:// directories)."""
    state: AppState = service.client.app.state.cap  # type: ignore[attr-defined]
    key, pem = generate_account_key()
    account_url = ca.url("/acct/7")
    body = IssuerIn(
        name=f"stub-{secrets.token_hex(3)}",
        kind="acme",
        acme=AcmeIssuerIn(directory_url=ca.directory_url, terms_agreed=True),
    )
    with transaction(state.sessions) as session:
        project_id = service.ok("GET", f"/projects/{project.slug}")["id"]
        issuer = issuers.create_acme_issuer(
            session,
            state.kek,
            project_id=project_id,
            body=body,
            account=issuers.RegisteredAccount(new_id(), account_url, pem),
            actor=Actor(user_id="test", email="admin@example.test", role="admin"),
        )
        issuer_id = issuer.id
    return issuer_id, AccountBinding(account_url, jwk_thumbprint(key), PREFIX)


def _put(lab: LabInfo, fqdn: str, value: str) -> None:
    keyring = dns.tsigkeyring.from_text({lab.tsig_name: lab.tsig_secret})
    update = dns.update.UpdateMessage(
        "manual.test", keyring=keyring, keyalgorithm=lab.tsig_algorithm
    )
    update.replace(fqdn + ".", 60, "TXT", f'"{value}"')
    assert dns.query.tcp(update, lab.dns_host, port=lab.dns_port, timeout=5).rcode() == 0


def _request(
    service: Service, project: Project, issuer_id: str, cn: str, auto_renew: bool = True
) -> str:
    cert = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": issuer_id, "common_name": cn, "auto_renew": auto_renew},
    )
    return str(cert["id"])


def _types(service: Service, project: Project, cert_id: str) -> list[str]:
    return [e["type"] for e in service.timeline(project.slug, cert_id)["events"]]


def test_offered_and_record_ok_is_answered_without_a_person(
    service: Service, project: Project, lab: LabInfo, persist_ca: PersistCA
) -> None:
    issuer_id, account = _stub_issuer(service, project, persist_ca)
    name = f"ok{secrets.token_hex(3)}.manual.test"
    spec = build_record(name, issuer_domain=ISSUER_DOMAIN, account=account)
    _put(lab, spec.record_name, spec.value)

    cert_id = _request(service, project, issuer_id, name)
    body = service.wait_for(project.slug, cert_id, ("issued", "failed", "awaiting_dns"))
    assert body["status"] == "issued", body
    assert persist_ca.answered == ["/chall/persist/0"]  # never the dns-01 one
    assert body["auto_renew"] is True  # the record lets it renew on its own
    types = _types(service, project, cert_id)
    assert "cert.auto_renew_enabled" in types
    assert "dns.persist.answered" in types
    assert "dns.manual.requested" not in types
    answered = next(
        e
        for e in service.timeline(project.slug, cert_id)["events"]
        if e["type"] == "dns.persist.answered"
    )
    assert answered["detail"]["name"] == name
    assert answered["detail"]["record_name"] == spec.record_name


def test_not_offered_is_manual_dns_01_as_today(
    service: Service, project: Project, lab: LabInfo, plain_ca: PersistCA
) -> None:
    issuer_id, account = _stub_issuer(service, project, plain_ca)
    name = f"no{secrets.token_hex(3)}.manual.test"
    spec = build_record(name, issuer_domain=ISSUER_DOMAIN, account=account)
    _put(lab, spec.record_name, spec.value)  # a record is no use when the CA does not offer it

    cert_id = _request(service, project, issuer_id, name)
    body = service.wait_for(project.slug, cert_id, ("issued", "failed", "awaiting_dns"))
    assert body["status"] == "awaiting_dns"
    assert body["pending_action"]["records"][0]["name"] == f"_acme-challenge.{name}"
    types = _types(service, project, cert_id)
    assert "dns.manual.requested" in types
    assert not any(t.startswith("dns.persist.") for t in types)
    assert plain_ca.answered == []


def test_record_wrong_is_manual_with_the_reason_on_the_timeline(
    service: Service, project: Project, lab: LabInfo, persist_ca: PersistCA
) -> None:
    issuer_id, _ = _stub_issuer(service, project, persist_ca)
    name = f"bad{secrets.token_hex(3)}.manual.test"
    someone_else = AccountBinding("https://stub.example/acct/999")
    wrong = build_record(name, issuer_domain=ISSUER_DOMAIN, account=someone_else)
    _put(lab, wrong.record_name, wrong.value)

    cert_id = _request(service, project, issuer_id, name)
    body = service.wait_for(project.slug, cert_id, ("issued", "failed", "awaiting_dns"))
    assert body["status"] == "awaiting_dns"
    assert body["pending_action"]["records"][0]["name"] == f"_acme-challenge.{name}"
    events = service.timeline(project.slug, cert_id)["events"]
    skipped = [e for e in events if e["type"] == "dns.persist.skipped"]
    assert len(skipped) == 1
    assert skipped[0]["detail"]["name"] == name
    assert skipped[0]["detail"]["status"] == "wrong_account"
    assert "accounturi=https://stub.example/acct/999" in skipped[0]["detail"]["reason"]
    assert persist_ca.answered == []
    assert body["auto_renew"] is False


def test_persist_only_with_a_missing_record_fails_saying_so(
    service: Service, project: Project
) -> None:
    ca = PersistCA(offer_persist=True, offer_dns01=False)
    try:
        issuer_id, _ = _stub_issuer(service, project, ca)
        name = f"only{secrets.token_hex(3)}.manual.test"
        cert_id = _request(service, project, issuer_id, name)
        body = service.wait_for(project.slug, cert_id, ("issued", "failed", "awaiting_dns"))
    finally:
        ca.stop()
    assert body["status"] == "failed"
    assert "offers only dns-persist-01" in body["error"]["detail"]
    assert f"_validation-persist.{name}" in body["error"]["detail"]
    assert ca.answered == []


def test_auto_renew_asked_off_stays_off(
    service: Service, project: Project, lab: LabInfo, persist_ca: PersistCA
) -> None:
    issuer_id, account = _stub_issuer(service, project, persist_ca)
    name = f"off{secrets.token_hex(3)}.manual.test"
    spec = build_record(name, issuer_domain=ISSUER_DOMAIN, account=account)
    _put(lab, spec.record_name, spec.value)
    cert_id = _request(service, project, issuer_id, name, auto_renew=False)
    body = service.wait_for(project.slug, cert_id, ("issued", "failed", "awaiting_dns"))
    assert body["status"] == "issued"
    assert body["auto_renew"] is False and body["auto_renew_disabled_reason"] is None
    assert "cert.auto_renew_enabled" not in _types(service, project, cert_id)
