"""One behavioural contract for every issuer behind the port (``issuers.interfaces``).

Run against the in-memory twin, the ACME plugin against Pebble (the lab: Pebble resolving
through BIND, TXT records published with RFC 2136) and the AD CS plugin against the certsrv
double. Each test does what the workflow does: order a certificate for names, answer what
the CA asks, finalize; then checks what a user would: the chain verifies up to the CA's
root, the leaf carries the names and the CSR's key, revocation and renewal information do
what ``capabilities`` says, and failures are the project's error types.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certautopilot.crypto import keys
from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot.errors import CertAutoPilotError, IssuerError
from certautopilot.issuers import interfaces as port
from certautopilot.issuers.acme.client import AcmeClient, get_client
from certautopilot.issuers.acme.keys import generate_account_key
from certautopilot.issuers.acme.plugin import AcmeAuthority
from certautopilot.issuers.adcs.client import AdcsClient, AdcsSettings
from certautopilot.issuers.adcs.plugin import AdcsAuthority
from certautopilot.issuers.interfaces import CertificateAuthority, Order, OrderOptions
from certautopilot.issuers.memory import MemoryAuthority
from certautopilot_lab.adcs_double import AdcsDouble
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import pebble_cert_status, pebble_roots

TIMEOUT = 30.0


@dataclass
class Subject:
    """An implementation under test and what the test needs to know about its CA."""

    ca: CertificateAuthority
    root: Callable[[], x509.Certificate]
    domain: str
    options: OrderOptions = field(default_factory=OrderOptions)
    pending_options: OrderOptions | None = None  # asks for a person's approval at the CA
    approve: Callable[[str], None] | None = None
    deny: Callable[[str], None] | None = None
    publish: Callable[[port.Challenge], None] | None = None
    unpublish: Callable[[port.Challenge], None] | None = None
    revoked: Callable[[x509.Certificate], bool] | None = None
    unknown_ref: str = "999999"


def _memory() -> Iterator[Subject]:
    twin = MemoryAuthority()
    yield Subject(
        ca=twin,
        root=lambda: twin.root,
        domain="memory.test",
        options=OrderOptions(profile="classic"),
        pending_options=OrderOptions(profile="approval"),
        approve=twin.approve,
        deny=twin.deny,
        revoked=lambda cert: cert.serial_number in twin.revoked,
    )


def _acme(lab: LabInfo) -> Iterator[Subject]:
    bundle = lab.ca_bundle_path.read_text()
    jwk, _ = generate_account_key()
    url = AcmeClient(lab.directory_url, jwk, ca_bundle_pem=bundle).register(
        "ops@example.test", True
    )
    ca = AcmeAuthority(
        get_client(lab.directory_url, jwk, account_url=url, ca_bundle_pem=bundle),
        ca_bundle_pem=bundle,
    )
    dns = RFC2136Provider(
        RFC2136Config(
            server=lab.dns_host,
            port=lab.dns_port,
            tsig_name=lab.tsig_name,
            tsig_algorithm=lab.tsig_algorithm,  # type: ignore[arg-type]
            tsig_secret=lab.tsig_secret,
        )
    )

    def root() -> x509.Certificate:
        roots = [x509.load_pem_x509_certificate(p.encode()) for p in pebble_roots(lab)]
        return next(r for r in roots if r.subject == r.issuer)

    def revoked(cert: x509.Certificate) -> bool:
        status = pebble_cert_status(lab, format(cert.serial_number, "x"))
        return bool(status["Status"] == "Revoked")

    yield Subject(
        ca=ca,
        root=root,
        domain="example.test",
        publish=lambda ch: dns.publish_txt("example.test", ch.txt_name, ch.txt_value or "", 60),
        unpublish=lambda ch: dns.remove_txt("example.test", ch.txt_name, ch.txt_value or ""),
        revoked=revoked,
        unknown_ref=lab.directory_url.rsplit("/", 1)[0] + "/my-order/does-not-exist",
    )


def _adcs() -> Iterator[Subject]:
    with AdcsDouble(auth_modes={"basic"}) as double:
        settings = AdcsSettings(
            url=double.url,
            auth="basic",
            username="CORP\\svc-pki",
            password="Corp-Pass-1",
            ca_bundle_pem=double.ca_bundle_pem,
        )
        yield Subject(
            ca=AdcsAuthority(AdcsClient(settings)),
            root=lambda: double.ca.root,
            domain="corp.test",
            options=OrderOptions(profile="WebServer"),
            pending_options=OrderOptions(profile="WebServerApproval"),
            approve=lambda ref: double.approve(int(ref)),
            deny=lambda ref: double.deny(int(ref)),
        )


@pytest.fixture(scope="module", params=["memory", "acme-pebble", "adcs-double"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    if request.param == "memory":
        yield from _memory()
    elif request.param == "acme-pebble":
        yield from _acme(request.getfixturevalue("lab"))
    else:
        yield from _adcs()


def _csr(names: list[str]) -> tuple[str, bytes]:
    key = keys.generate_key("ecdsa-p256")
    return keys.build_csr(key, names).decode(), keys.key_to_pem(key)


def _names(subject: Subject) -> list[str]:
    label = f"c-{uuid.uuid4().hex[:8]}"
    return [f"{label}.{subject.domain}", f"www.{label}.{subject.domain}"]


def _until_settled(subject: Subject, order: Order) -> Order:
    deadline = time.monotonic() + TIMEOUT
    while order.state == "processing" and time.monotonic() < deadline:
        time.sleep(0.05)
        order = subject.ca.poll(order.ref)
    return order


def _issue(subject: Subject, names: list[str]) -> tuple[str, str]:
    """What the workflow does: order, publish + answer any challenge, finalize."""
    csr_pem, _ = _csr(names)
    order = subject.ca.order(csr_pem, subject.options)
    assert order.ref
    if order.state == "authorizing":
        assert subject.publish is not None
        published = [ch for ch in order.challenges if not ch.valid]
        try:
            for ch in published:
                subject.publish(ch)
            subject.ca.answer(order, timeout=TIMEOUT)
        finally:  # the lab's zone is shared: leave no record behind, as the workflow does
            if subject.unpublish is not None:
                for ch in published:
                    subject.unpublish(ch)
        order = subject.ca.poll(order.ref)
    order = _until_settled(subject, order)
    assert order.state in ("ready", "issued"), order
    return subject.ca.finalize(order, csr_pem, timeout=TIMEOUT), csr_pem


def _verified_leaf(subject: Subject, chain_pem: str) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    for child, parent in itertools.pairwise([*certs, subject.root()]):
        child.verify_directly_issued_by(parent)
    return certs[0]


def _spki(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return obj.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dns_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


def test_issues_a_certificate_for_the_names(subject: Subject) -> None:
    names = _names(subject)
    chain, csr_pem = _issue(subject, names)
    leaf = _verified_leaf(subject, chain)
    assert _dns_names(leaf) == set(names)
    assert _spki(leaf) == _spki(x509.load_pem_x509_csr(csr_pem.encode()))


def test_challenges_are_stated_truthfully(subject: Subject) -> None:
    """DNS-01 challenges exactly when the plugin says it validates with DNS-01."""
    csr_pem, _ = _csr(_names(subject))
    order = subject.ca.order(csr_pem, subject.options)
    if port.DNS01 in subject.ca.capabilities:
        assert order.state == "authorizing" and order.challenges
        assert all(ch.txt_name.startswith("_acme-challenge.") for ch in order.challenges)
    else:
        assert order.challenges == ()
    again = subject.ca.poll(order.ref)
    assert again.ref == order.ref and again.state == order.state


def test_profiles_are_stated_truthfully(subject: Subject) -> None:
    offered = subject.ca.profiles()
    assert isinstance(offered, dict)
    if port.PROFILES not in subject.ca.capabilities:
        assert offered == {}


def test_revocation_as_stated(subject: Subject) -> None:
    chain, _ = _issue(subject, _names(subject))
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    if port.REVOKE not in subject.ca.capabilities:
        with pytest.raises(port.RevocationUnsupported):
            subject.ca.revoke(leaf_pem, 4)
        return
    assert subject.revoked is not None
    assert not subject.revoked(leaf)
    subject.ca.revoke(leaf_pem, 4)
    assert subject.revoked(leaf)
    subject.ca.revoke(leaf_pem, 4)  # revoking again is not an error


def test_renewal_info_as_stated(subject: Subject) -> None:
    chain, _ = _issue(subject, _names(subject))
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    info = subject.ca.renewal_info(leaf.public_bytes(serialization.Encoding.PEM).decode())
    if port.ARI not in subject.ca.capabilities:
        assert info is None
        return
    # ARI is offered by the CA's directory or not (Pebble's has no renewalInfo): a window
    # when there is one, inside the certificate's life.
    if info is not None:
        assert leaf.not_valid_before_utc <= info.start < info.end <= leaf.not_valid_after_utc


def test_pending_approval_as_stated(subject: Subject) -> None:
    if port.PENDING_APPROVAL_AT_CA not in subject.ca.capabilities:
        assert subject.pending_options is None
        return
    assert subject.pending_options is not None
    assert subject.approve is not None and subject.deny is not None
    names = _names(subject)
    csr_pem, _ = _csr(names)
    order = subject.ca.order(csr_pem, subject.pending_options)
    assert order.state == "pending"
    assert subject.ca.poll(order.ref).state == "pending"
    subject.approve(order.ref)
    issued = subject.ca.poll(order.ref)
    assert issued.state == "issued"
    leaf = _verified_leaf(subject, subject.ca.finalize(issued, csr_pem, timeout=TIMEOUT))
    assert _dns_names(leaf) == set(names)

    denied = subject.ca.order(_csr(_names(subject))[0], subject.pending_options)
    subject.deny(denied.ref)
    with pytest.raises(port.RequestDenied) as refused:
        subject.ca.poll(denied.ref)
    assert refused.value.ref == denied.ref
    assert isinstance(refused.value, IssuerError)


def test_errors_are_the_projects(subject: Subject) -> None:
    with pytest.raises(IssuerError):
        subject.ca.poll(subject.unknown_ref)
    with pytest.raises(CertAutoPilotError):
        subject.ca.order("not a CSR", subject.options)
