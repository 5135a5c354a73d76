"""Plain, picklable value objects returned by :class:`~.client.AcmeClient`.

They cross workflow-step boundaries, so they hold only strings, booleans and tuples of
strings: never a key, a JWK, an EAB HMAC or a library object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "STATUS_DEACTIVATED",
    "STATUS_EXPIRED",
    "STATUS_INVALID",
    "STATUS_PENDING",
    "STATUS_PROCESSING",
    "STATUS_READY",
    "STATUS_REVOKED",
    "STATUS_VALID",
    "AcmeOrder",
    "Dns01Challenge",
]

STATUS_PENDING: Final = "pending"
STATUS_READY: Final = "ready"
STATUS_PROCESSING: Final = "processing"
STATUS_VALID: Final = "valid"
STATUS_INVALID: Final = "invalid"
STATUS_DEACTIVATED: Final = "deactivated"
STATUS_EXPIRED: Final = "expired"
STATUS_REVOKED: Final = "revoked"


@dataclass(frozen=True, slots=True)
class AcmeOrder:
    """An ACME order as the CA last reported it (RFC 8555 §7.1.3).

    ``identifiers`` are the identifier values in the CA's order (``*.example.com`` for a
    wildcard). ``expires`` is the CA's RFC 3339 timestamp, when given. ``error_type`` and
    ``error_detail`` carry the order's problem document once it is ``invalid``.
    ``replaces`` is the ARI certificate identifier (RFC 9773 §5) the order replaces as the
    CA acknowledged it (echoed in the order); ``replaces_sent`` is what the client sent.
    """

    url: str
    status: str
    identifiers: tuple[str, ...]
    authorization_urls: tuple[str, ...]
    finalize_url: str
    certificate_url: str | None = None
    expires: str | None = None
    error_type: str | None = None
    error_detail: str | None = None
    replaces: str | None = None
    replaces_sent: str | None = None
    profile: str | None = None  # the profile the CA's new order names (when it says)


@dataclass(frozen=True, slots=True)
class Dns01Challenge:
    """One authorization of an order with its DNS-01 challenge.

    ``identifier`` is the name the CA validates: for a wildcard order entry ``*.example.com``
    it is ``example.com`` with ``wildcard`` set, so the wildcard and the bare name share
    ``txt_name`` and need two TXT values published at once.

    An authorization that is already ``valid`` (reused by the CA) is listed too; when such
    an authorization offers no dns-01 challenge, ``challenge_url``, ``challenge_status``
    and ``txt_value`` are ``None``. Use :attr:`needs_answer` to decide what to publish.
    An authorization that offers only dns-persist-01 is listed too (``txt_value`` None,
    ``persist_url`` set).
    """

    identifier: str
    wildcard: bool
    authz_url: str
    authz_status: str
    challenge_url: str | None
    challenge_status: str | None
    txt_name: str
    txt_value: str | None
    # dns-persist-01 (draft-ietf-acme-dns-persist-02 §3.1), when the authorization offers it:
    # the challenge URL, its status and its issuer domain names as the CA sent them.
    persist_url: str | None = None
    persist_status: str | None = None
    persist_issuer_domains: tuple[str, ...] = ()

    @property
    def persist_needs_answer(self) -> bool:
        """True while the CA waits for the dns-persist-01 challenge to be answered."""
        return self.authz_status == STATUS_PENDING and self.persist_status == STATUS_PENDING

    @property
    def needs_answer(self) -> bool:
        """True while the CA still waits for this challenge to be answered."""
        return self.authz_status == STATUS_PENDING and self.challenge_status == STATUS_PENDING

    @property
    def requested_name(self) -> str:
        """The name as it appears in the order and the certificate (``*.`` for a wildcard)."""
        return f"*.{self.identifier}" if self.wildcard else self.identifier
