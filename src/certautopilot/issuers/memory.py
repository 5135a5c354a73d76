"""An in-memory issuer: the issuer port's twin, for unit tests and the conformance suite.

A throw-away two-level CA made with ``cryptography`` (a root and an issuing CA) signs real
certificates for the CSR's names. It keeps requests in memory and behaves like a CA that
takes the CSR directly: a request for a profile in ``pending_profiles`` waits for
:meth:`MemoryAuthority.approve` / :meth:`~MemoryAuthority.deny` (a person at the CA), any
other is issued at once. It revokes, and answers renewal information (the last third of a
certificate's life). It is not a production plugin: no entry point registers it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certautopilot.errors import InvalidInput, IssuerError
from certautopilot.issuers import interfaces as port
from certautopilot.issuers.interfaces import (
    Order,
    OrderOptions,
    RequestDenied,
    RequestUnknown,
)
from certautopilot.renewal.ari import RenewalInfo

PT_DENIED = "urn:certautopilot:memory:denied"
PT_NOT_FOUND = "urn:certautopilot:memory:unknown-request"
PT_UNKNOWN_PROFILE = "urn:certautopilot:memory:unknown-profile"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    now: dt.datetime,
) -> x509.Certificate:
    issuer_name, signer = issuer if issuer else (_name(subject), key)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
        .sign(signer, hashes.SHA256())
    )


@dataclass
class _Request:
    id: int
    csr_pem: str
    profile: str | None
    state: str  # "pending" | "issued" | "denied"
    disposition: str = ""
    certificate: x509.Certificate | None = None


@dataclass
class MemoryAuthority:
    """The twin. ``profiles_offered`` name the profiles an order may ask for."""

    profiles_offered: dict[str, str] = field(
        default_factory=lambda: {"classic": "90 days", "approval": "needs a CA manager"}
    )
    pending_profiles: frozenset[str] = frozenset({"approval"})
    validity: dt.timedelta = dt.timedelta(days=90)
    capabilities: frozenset[str] = frozenset(
        {port.REVOKE, port.ARI, port.PROFILES, port.PENDING_APPROVAL_AT_CA}
    )

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self._root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _ca_cert("Memory Twin Root", self._root_key, None, now)
        self._issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = _ca_cert(
            "Memory Twin Issuing CA", self._issuing_key, (self.root.subject, self._root_key), now
        )
        self._requests: dict[int, _Request] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.revoked: dict[int, int] = {}  # serial -> RFC 5280 reason

    # -- what a person at the CA does -----------------------------------------------------

    def approve(self, ref: str) -> None:
        request = self._get(ref)
        with self._lock:
            if request.state == "pending":
                self._issue(request)

    def deny(self, ref: str, message: str = "Denied by a CA manager") -> None:
        request = self._get(ref)
        with self._lock:
            request.state, request.disposition = "denied", message

    # -- the port ------------------------------------------------------------------------

    def order(self, csr_pem: str, options: OrderOptions) -> Order:
        csr = self._csr(csr_pem)
        if options.profile is not None and options.profile not in self.profiles_offered:
            raise IssuerError(f"no profile {options.profile!r} at this CA", PT_UNKNOWN_PROFILE)
        if not _dns_names(csr):
            raise InvalidInput.field("csr_pem", "the CSR names no DNS name")
        with self._lock:
            request = _Request(next(self._ids), csr_pem, options.profile, "pending")
            self._requests[request.id] = request
            if options.profile not in self.pending_profiles:
                self._issue(request)
        return self._order(request)

    def poll(self, ref: str) -> Order:
        return self._order(self._get(ref))

    def answer(self, order: Order, *, timeout: float) -> None:
        """Nothing to answer: this CA validates no names."""

    def finalize(self, order: Order, csr_pem: str, *, timeout: float) -> str:
        request = self._get(order.ref)
        self._order(request)  # a denied request raises
        if request.certificate is None:
            raise IssuerError(f"request {order.ref} is still pending at the CA")
        if request.csr_pem.strip() != csr_pem.strip():
            raise IssuerError(f"request {order.ref} was made for another CSR")
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (request.certificate, self.issuing)
        )

    def revoke(self, cert_pem: str, reason: int) -> None:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode())
        except ValueError as exc:
            raise InvalidInput.field("cert_pem", f"not a PEM certificate ({exc})") from exc
        if cert.issuer != self.issuing.subject:
            raise IssuerError("this CA did not issue that certificate")
        with self._lock:
            self.revoked.setdefault(cert.serial_number, reason)  # again: success

    def renewal_info(self, cert_pem: str) -> RenewalInfo | None:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        if cert.issuer != self.issuing.subject:
            return None
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        life = end - start
        return RenewalInfo(start + life * 2 / 3, end - life / 6, None, 6 * 3600.0)

    def profiles(self) -> dict[str, str]:
        return dict(self.profiles_offered)

    def check(self) -> list[port.CheckStep]:
        offered = ", ".join(sorted(self.profiles_offered)) or "none"
        return [port.CheckStep("ca", True, f"in memory; profiles {offered}")]

    # -- inside ------------------------------------------------------------------------

    def _get(self, ref: str) -> _Request:
        try:
            request = self._requests[int(ref)]
        except (KeyError, ValueError):
            raise RequestUnknown(f"the CA does not know request {ref}", PT_NOT_FOUND) from None
        return request

    def _order(self, request: _Request) -> Order:
        if request.state == "denied":
            raise RequestDenied(
                f"The CA denied request {request.id}: {request.disposition}",
                PT_DENIED,
                None,
                str(request.id),
                request.disposition,
            )
        state: port.OrderState = "issued" if request.state == "issued" else "pending"
        return Order(str(request.id), state)

    @staticmethod
    def _csr(csr_pem: str) -> x509.CertificateSigningRequest:
        try:
            return x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as exc:
            raise InvalidInput.field("csr_pem", f"not a PEM certificate request ({exc})") from exc

    def _issue(self, request: _Request) -> None:
        csr = self._csr(request.csr_pem)
        names = _dns_names(csr)
        now = dt.datetime.now(dt.UTC)
        request.certificate = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)  # as asked: empty when the CN was too long
            .issuer_name(self.issuing.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + self.validity)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuing_key.public_key()),
                False,
            )
            .sign(self._issuing_key, hashes.SHA256())
        )
        request.state, request.disposition = "issued", "Issued"


def _dns_names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = list(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names
