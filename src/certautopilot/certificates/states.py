"""The certificate's and the certificate version's states, and the moves between them.

The tables are what the code does (issuance, approval, renewal, revocation), read path by
path; :func:`transition` and :func:`transition_version` are the only way a status changes.

Certificate, one issuance::

    requested ─┬─> awaiting_approval ─┬─> requested (approved)
               │                      └─> rejected (rejected, expired)
               └─> issuing ─┬─> awaiting_dns ─> issuing (manual records confirmed)
                            ├─> awaiting_ca ─> issued (AD CS manager approved)
                            └─> issued
    any state while issuing (requested, issuing, awaiting_*) ─> failed

A renewal starts again at ``requested`` from ``issued`` or ``failed``; a failed renewal
whose current certificate is still valid goes back from ``failed`` to ``issued``, and one
that spent its attempts goes to ``failed``. Revocation needs an issued version and does not
stop a renewal already running, so the renewal's own moves can follow ``revoked``.
"""

from __future__ import annotations

from enum import StrEnum

from certautopilot.statemachine import Machine


class CertStatus(StrEnum):
    REQUESTED = "requested"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_DNS = "awaiting_dns"
    AWAITING_CA = "awaiting_ca"
    ISSUING = "issuing"
    ISSUED = "issued"
    FAILED = "failed"
    REJECTED = "rejected"
    REVOKED = "revoked"


class VersionStatus(StrEnum):
    PENDING = "pending"
    ISSUED = "issued"
    FAILED = "failed"
    REJECTED = "rejected"
    REVOKED = "revoked"


C = CertStatus
# A certificate with an issuance under way (a second one is refused).
ACTIVE = frozenset({C.REQUESTED, C.AWAITING_DNS, C.AWAITING_CA, C.ISSUING})
# A renewal running when the current version was revoked goes on to its end.
_RENEWAL_AFTER_REVOKE = frozenset({C.ISSUING, C.AWAITING_DNS, C.AWAITING_CA, C.ISSUED, C.FAILED})

CERT_MOVES: dict[CertStatus, frozenset[CertStatus]] = {
    C.REQUESTED: frozenset({C.AWAITING_APPROVAL, C.ISSUING, C.FAILED, C.REVOKED}),
    C.AWAITING_APPROVAL: frozenset({C.REQUESTED, C.REJECTED}),
    C.ISSUING: frozenset({C.AWAITING_DNS, C.AWAITING_CA, C.ISSUED, C.FAILED, C.REVOKED}),
    C.AWAITING_DNS: frozenset({C.ISSUING, C.FAILED, C.REVOKED}),
    C.AWAITING_CA: frozenset({C.ISSUED, C.FAILED, C.REVOKED}),
    C.ISSUED: frozenset({C.REQUESTED, C.FAILED, C.REVOKED}),
    C.FAILED: frozenset({C.REQUESTED, C.ISSUED, C.REVOKED}),
    C.REJECTED: frozenset(),
    C.REVOKED: _RENEWAL_AFTER_REVOKE,
}

V = VersionStatus
VERSION_MOVES: dict[VersionStatus, frozenset[VersionStatus]] = {
    V.PENDING: frozenset({V.ISSUED, V.FAILED, V.REJECTED}),
    V.ISSUED: frozenset({V.REVOKED}),
    V.FAILED: frozenset(),
    V.REJECTED: frozenset(),
    V.REVOKED: frozenset(),
}

CERTIFICATE = Machine("certificate", CertStatus, CERT_MOVES)
VERSION = Machine("certificate version", VersionStatus, VERSION_MOVES)


def transition(current: str, new: CertStatus) -> CertStatus:
    """The certificate's next status; IllegalTransition (409) when the table forbids it."""
    return CERTIFICATE.move(current, new)


def transition_version(current: str, new: VersionStatus) -> VersionStatus:
    """A version's next status; IllegalTransition (409) when the table forbids it."""
    return VERSION.move(current, new)
