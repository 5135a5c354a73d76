"""The issuer port: what the core asks of a certificate authority, whatever its protocol.

Why one Protocol for ACME and AD CS: the issuance workflow owns deadlines, retries, DNS
publishing and cleanup, the database and the audit trail; a CA plugin only speaks its
protocol. Both protocols fit one shape::

    order(csr)          ACME: newOrder (state "authorizing", with dns-01 challenges, or "ready")
                        AD CS: submit the CSR (state "issued" at once, or "pending" at the CA)
    poll(ref)           ACME: the order by its URL; AD CS: the request by its id
    answer(order)       ACME: answer the challenges, wait until every authorization is valid
                        (the core publishes the TXT records first); AD CS: nothing to answer
    finalize(order)     ACME: finalize, poll, download; AD CS: download certificate and chain
    revoke(cert)        ACME: revokeCert; AD CS: Web Enrollment cannot (``RevocationUnsupported``)
    renewal_info(cert)  ACME: ARI (RFC 9773) when the directory offers it; AD CS: None
    check()             the Test button: each step of reaching the CA with these settings
                        (ACME: directory, nonce, the account; AD CS: sign-in, templates,
                        CA chain), orders nothing

A plugin states what it can do in ``capabilities`` (:data:`DNS01`, :data:`ARI`, …) and the
core asks those flags, never the plugin's name. Every value crossing the port is public and
picklable (it may be checkpointed by a workflow step): never a key, an HMAC or a password.
Errors are the project's: :class:`~certautopilot.errors.IssuerError` (final),
:class:`~certautopilot.errors.TransientIssuerError` (retry later), ``InvalidInput``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from certautopilot.errors import IssuerError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from certautopilot.crypto.interfaces import KeyEncryptionKey
    from certautopilot.issuers.models import Issuer
    from certautopilot.renewal.ari import RenewalInfo

#: The CA validates names with DNS-01 challenges (the core publishes TXT records).
DNS01 = "dns01"
#: The CA answers ACME Renewal Information (RFC 9773) for its certificates (when its
#: directory offers ``renewalInfo``).
ARI = "ari"
#: Orders may name a certificate profile the CA advertises (ACME ``meta.profiles``).
PROFILES = "profiles"
#: The CA revokes on request; without it revocation is an operator action, recorded only.
REVOKE = "revoke"
#: A request may wait for a person at the CA (AD CS "Taken Under Submission").
PENDING_APPROVAL_AT_CA = "pending_approval_at_ca"
#: The CA enforces order rate limits the core budgets for (Let's Encrypt-style).
ORDER_RATE_LIMITS = "order_rate_limits"
#: Requests name a certificate template (AD CS).
TEMPLATES = "templates"
#: Authorizations may offer dns-persist-01 (draft-ietf-acme-dns-persist-02): the CA reads a
#: persistent ``_validation-persist`` record a person published once; the client implements
#: :class:`PersistCapable` so the core can check that record before answering.
DNS_PERSIST = "dns_persist"

OrderState = Literal["authorizing", "ready", "processing", "pending", "issued"]


@dataclass(frozen=True)
class Challenge:
    """One DNS-01 challenge: the TXT record to publish. All values are public."""

    name: str  # as in the certificate (``*.example.com`` for a wildcard)
    identifier: str  # the name the CA validates (``example.com`` for that wildcard)
    txt_name: str
    txt_value: str | None  # None when the authorization is valid already, without dns-01
    authz_url: str
    challenge_url: str | None
    valid: bool  # the CA holds this authorization valid already: nothing to publish
    needs_answer: bool
    # dns-persist-01 offered beside (or instead of) dns-01: its URL, its issuer domain
    # names as the CA sent them, and whether it still waits for an answer.
    persist_url: str | None = None
    persist_issuer_domains: tuple[str, ...] = ()
    persist_needs_answer: bool = False


@dataclass(frozen=True)
class PersistAccount:
    """What a dns-persist-01 record binds (draft §4.1): the account URL, the account key's
    RFC 7638 thumbprint (public) and the directory's ``meta`` as the CA sent it
    (``issuerDomainNames``, ``accountHashPrefix``)."""

    account_url: str
    key_thumbprint: str
    directory_meta: dict[str, Any]


@runtime_checkable
class PersistCapable(Protocol):
    """A client whose CA may offer dns-persist-01 (capability :data:`DNS_PERSIST`)."""

    def persist_account(self) -> PersistAccount:
        """The account and directory data a ``_validation-persist`` record is checked with."""
        ...


@dataclass(frozen=True)
class OrderOptions:
    """What an order asks for besides the CSR's names."""

    profile: str | None = None  # ACME profile, or AD CS template
    replaces: str | None = None  # ARI id of the certificate a renewal replaces


@dataclass(frozen=True)
class Order:
    """An order (ACME) or a request (AD CS) as the CA last reported it.

    ``ref`` is how to find it again (ACME order URL, AD CS request id as text): the core
    stores it before anything else so a retried step resumes instead of ordering again.
    """

    ref: str
    state: OrderState
    challenges: tuple[Challenge, ...] = ()
    replaces: str | None = None  # ARI id the CA acknowledged replacing (RFC 9773 §5)
    detail: str | None = None  # the CA's words on the state (AD CS disposition)
    replaces_sent: str | None = None  # ARI id the client sent, acknowledged or not
    profile: str | None = None  # the ACME profile the CA's order names, when it says


class RequestDenied(IssuerError):
    """The CA refused the request (AD CS: denied by a manager or the policy module).

    ``ref`` is the CA's request id when it gave one and ``disposition`` the CA's own words;
    the core records both."""

    def __init__(
        self,
        detail: str = "",
        problem_type: str | None = None,
        retry_after: float | None = None,
        ref: str | None = None,
        disposition: str = "",
    ) -> None:
        super().__init__(detail, problem_type, retry_after)
        self.args = (detail, problem_type, retry_after, ref, disposition)
        self.ref = ref
        self.disposition = disposition


class RequestUnknown(IssuerError):
    """The CA does not know the request ``ref`` (any more)."""


class RevocationUnsupported(IssuerError):
    """This CA's protocol cannot revoke: an operator revokes on the CA, then records it."""

    status = 409
    title = "Revocation is an operator action on this CA"


@dataclass(frozen=True)
class CheckStep:
    """One step of :meth:`CertificateAuthority.check`: what was tried, whether it worked,
    and the CA's words (never a secret)."""

    step: str
    ok: bool
    detail: str


@runtime_checkable
class CertificateAuthority(Protocol):
    """One configured issuer, connected: what the workflow calls. Thread-safe."""

    capabilities: frozenset[str]

    def order(self, csr_pem: str, options: OrderOptions) -> Order:
        """Creates the order / submits the CSR, once: the core stores ``ref`` at once."""
        ...

    def poll(self, ref: str) -> Order:
        """The order's or request's current state (an ACME order "invalid" raises)."""
        ...

    def answer(self, order: Order, *, timeout: float) -> None:
        """Tells the CA the published challenges are ready; returns once all are valid."""
        ...

    def finalize(self, order: Order, csr_pem: str, *, timeout: float) -> str:
        """The issued chain as PEM, leaf first; safe to repeat (never issues twice)."""
        ...

    def revoke(self, cert_pem: str, reason: int) -> None:
        """Revokes the certificate (RFC 5280 reason code); :class:`RevocationUnsupported`
        when the protocol cannot."""
        ...

    def renewal_info(self, cert_pem: str) -> RenewalInfo | None:
        """The CA's suggested renewal window for the certificate, or None when it has none."""
        ...

    def profiles(self) -> dict[str, str]:
        """Profiles (name -> description) an order may ask for; empty when none."""
        ...

    def check(self) -> list[CheckStep]:
        """Reaches the CA as an order would, step by step, and stops at the first step that
        fails (its ``ok`` False); orders and changes nothing. Errors are steps, not raised."""
        ...


class IssuerPlugin(Protocol):
    """The class an entry point of ``certautopilot.issuers`` loads."""

    name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    capabilities: ClassVar[frozenset[str]]

    @classmethod
    def connect(
        cls, session: Session, kek: KeyEncryptionKey, issuer: Issuer
    ) -> CertificateAuthority:
        """A client for one issuer, its secrets revealed into worker memory only (the core
        caches it per worker until the issuer is edited: see ``issuers.service.fingerprint``)."""
        ...
