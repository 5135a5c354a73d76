"""ARI ``replaces`` (RFC 9773 §5): a renewal's newOrder names the certificate it replaces
when - and only when - the CA's directory offers ``renewalInfo``; checked on the JWS
payload the scripted CA receives. And the identifier is that of the version replaced."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))

from _acme_stub_server import Reply, StubCA, problem, stub_ca

from certautopilot.certificates import material
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.db import models
from certautopilot.errors import IssuerError
from certautopilot.issuers.acme.client import AcmeClient
from certautopilot.issuers.acme.keys import generate_account_key
from certautopilot.renewal.ari import cert_id, serial_octets
from certautopilot.workflows.acme_steps import replaced_ari_id

ARI_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"  # RFC 9773 §4.1's example identifier


@pytest.fixture
def ca() -> Iterator[StubCA]:
    with stub_ca() as server:
        yield server


def _directory(ca: StubCA, *, ari: bool) -> None:
    body = {
        "newNonce": ca.url("/nonce"),
        "newAccount": ca.url("/acct"),
        "newOrder": ca.url("/order"),
        "revokeCert": ca.url("/revoke"),
        "meta": {},
    }
    if ari:
        body["renewalInfo"] = ca.url("/renewal-info")
    ca.script("/dir", Reply(body=body, nonce=False))


def _client(ca: StubCA) -> AcmeClient:
    key, _ = generate_account_key()
    return AcmeClient(ca.directory_url, key, account_url=ca.url("/acct/1"), sleep=lambda s: None)


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.test")]), False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def _order(ca: StubCA, **extra: object) -> Reply:
    body = {
        "status": "pending",
        "identifiers": [{"type": "dns", "value": "a.example.test"}],
        "authorizations": [ca.url("/authz/1")],
        "finalize": ca.url("/finalize/1"),
        **extra,
    }
    return Reply(201, body, {"Location": ca.url("/order/1")})


def _payloads(ca: StubCA) -> list[dict[str, object]]:
    return [json.loads(s.payload or b"{}") for s in ca.requests_to("/order", "POST")]


def test_replaces_sent_when_the_directory_offers_renewal_info(ca: StubCA) -> None:
    _directory(ca, ari=True)
    ca.script("/order", _order(ca, replaces=ARI_ID))
    order = _client(ca).new_order(_csr(), replaces=ARI_ID)
    (payload,) = _payloads(ca)
    assert payload["replaces"] == ARI_ID
    assert payload["identifiers"] == [{"type": "dns", "value": "a.example.test"}]
    assert order.replaces == ARI_ID


def test_replaces_the_ca_does_not_echo_is_sent_but_not_acknowledged(ca: StubCA) -> None:
    """RFC 9773 §5: the order shows what the CA took into account (acme2certifier 0.46
    ignores the field and leaves it out of the order)."""
    _directory(ca, ari=True)
    ca.script("/order", _order(ca))
    order = _client(ca).new_order(_csr(), replaces=ARI_ID)
    assert _payloads(ca)[0]["replaces"] == ARI_ID
    assert order.replaces is None and order.replaces_sent == ARI_ID


def test_replaces_not_sent_without_renewal_info(ca: StubCA) -> None:
    _directory(ca, ari=False)  # Pebble 2.4, many CAs
    ca.script("/order", _order(ca))
    order = _client(ca).new_order(_csr(), replaces=ARI_ID, profile="shortlived")
    (payload,) = _payloads(ca)
    assert "replaces" not in payload and payload["profile"] == "shortlived"
    assert order.replaces is None


def test_first_issuance_sends_no_replaces(ca: StubCA) -> None:
    _directory(ca, ari=True)
    ca.script("/order", _order(ca))
    _client(ca).new_order(_csr())
    assert "replaces" not in _payloads(ca)[0]


def test_already_replaced_orders_again_without_it(ca: StubCA) -> None:
    _directory(ca, ari=True)
    ca.script(
        "/order",
        problem("alreadyReplaced", "certificate already replaced by another order", 409),
        _order(ca),
    )
    order = _client(ca).new_order(_csr(), replaces=ARI_ID)
    first, second = _payloads(ca)
    assert first["replaces"] == ARI_ID and "replaces" not in second
    assert order.replaces is None and order.url == ca.url("/order/1")


def test_other_refusals_are_not_retried_without_replaces(ca: StubCA) -> None:
    _directory(ca, ari=True)
    ca.script("/order", problem("malformed", "identifiers do not match", 400))
    with pytest.raises(IssuerError):
        _client(ca).new_order(_csr(), replaces=ARI_ID)
    assert len(_payloads(ca)) == 1


# -- which identifier: the version being replaced ------------------------------------------


def _leaf(serial: int, aki: bytes) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a.example.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_the_identifier_is_that_of_the_current_version() -> None:
    engine = create_engine("sqlite://")
    models.Base.metadata.create_all(engine)
    kek = EnvKEK(base64.b64encode(os.urandom(32)).decode())
    aki = bytes.fromhex("69885b6b87464041e1b37b847ba0ae2cde01c8d4")  # RFC 9773's example
    with Session(engine) as session:
        cert = Certificate(
            project_id="p", issuer_id="i", common_name="a.example.test", names=[], key_type="x",
            created_by="u",
        )  # fmt: skip
        session.add(cert)
        session.flush()
        old = CertificateVersion(certificate_id=cert.id, seq=1, status="issued")
        new = CertificateVersion(certificate_id=cert.id, seq=2, reason="renew")
        first = CertificateVersion(certificate_id=cert.id, seq=3, reason="issue")
        session.add_all([old, new, first])
        session.flush()
        material.store_chain(session, kek, old, _leaf(0x87654321, aki))
        cert.current_version_id = old.id
        session.flush()
        expected = cert_id(aki, serial_octets(0x87654321))
        assert expected == ARI_ID
        assert replaced_ari_id(session, kek, cert, new) == ARI_ID
        assert replaced_ari_id(session, kek, cert, first) is None  # not a renewal
        broken = CertificateVersion(certificate_id=cert.id, seq=4, status="issued")
        session.add(broken)
        session.flush()
        material.store_chain(session, kek, broken, "not a certificate")
        cert.current_version_id = broken.id
        assert replaced_ari_id(session, kek, cert, new) is None  # unreadable: no replaces
        cert.current_version_id = None
        assert replaced_ari_id(session, kek, cert, new) is None  # nothing issued yet
    engine.dispose()
