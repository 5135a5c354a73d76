"""Downloads and revocation of issued versions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates import material
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.service import current_version, reason_code
from certautopilot.certificates.states import (
    CertStatus,
    VersionStatus,
    transition,
    transition_version,
)
from certautopilot.clock import utcnow
from certautopilot.crypto import keys
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.distribution import service as distribution
from certautopilot.errors import CertAutoPilotError, Conflict, InvalidInput, NotFound
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers

DOWNLOADS = ("fullchain", "chain", "cert", "key")

#: How long a revocation's claim holds. Past it, the request that took the claim is taken
#: to have died between the claim and the record (its process killed while the CA was
#: asked) and another request may revoke; a CA that did revoke answers ``alreadyRevoked``,
#: which counts as success. Far longer than any CA call may take.
REVOCATION_CLAIM_TTL = timedelta(minutes=5)
ALREADY_REVOKING = "the certificate is revoked already, or another request is revoking it right now"


def issued_version(session: Session, cert: Certificate) -> CertificateVersion:
    version = current_version(session, cert)
    if version is None or version.chain_secret_id is None:
        raise NotFound("the certificate has not been issued yet")
    return version


def download(
    session: Session, kek: KeyEncryptionKey, *, cert: Certificate, what: str, actor: Actor
) -> str:
    return pem_of(
        session, kek, cert=cert, version=issued_version(session, cert), what=what, actor=actor
    )


def pem_of(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    version: CertificateVersion,
    what: str,
    actor: Actor,
) -> str:
    """One download of a version: cert, chain, fullchain, or the key (admins; audited)."""
    if what == "key":
        require(actor, "admin", "Downloading a private key")
        pem = material.private_key_pem(session, kek, version)
        if pem is None:
            raise NotFound("the service does not hold this certificate's private key")
        _key_exported(session, actor, cert, version)
        return pem
    parts = keys.split_pem_chain(material.chain_pem(session, kek, version))
    if what == "cert":
        return parts[0]
    if what == "chain":
        return "".join(parts[1:])
    return "".join(parts)


def _key_exported(
    session: Session,
    actor: Actor,
    cert: Certificate,
    version: CertificateVersion,
    fmt: str | None = None,
) -> None:
    detail: dict[str, object] = {"version": version.seq, "serial": version.serial}
    if fmt is not None:
        detail["format"] = fmt
    audit.record(
        session,
        type=EventType.KEY_EXPORTED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail=detail,
    )


def file_stem(cert: Certificate) -> str:
    """A download's file name, without extension (``*`` spelt out)."""
    return cert.common_name.replace("*", "wildcard")


def pkcs12_download(
    session: Session, kek: KeyEncryptionKey, *, cert: Certificate, password: str, actor: Actor
) -> bytes:
    """The current version's key, leaf and chain as PKCS#12 (AES-256, PBKDF2) under
    ``password``, which is used for this file only. Admins only; audited as
    ``key.exported`` like the key's PEM download."""
    require(actor, "admin", "Downloading a private key")
    version = issued_version(session, cert)
    bundle = distribution.material_for(session, kek, cert, version)
    if bundle.key_pem is None:
        raise NotFound(
            "the service does not hold this certificate's private key (it was issued from "
            "your own CSR), so it cannot build a PKCS#12 file; download cert.pem or "
            "fullchain.pem and bundle them with your key"
        )
    data = bundle.pkcs12(password)
    _key_exported(session, actor, cert, version, "pkcs12")
    return data


@dataclass(frozen=True)
class Revocation:
    """A checked revocation: what to tell the CA (nothing when it is only recorded)."""

    certificate_id: str
    version_id: str
    reason: str
    code: int
    leaf_pem: str | None = None
    ca: issuer_port.CertificateAuthority | None = None
    #: Set by :func:`claim_revocation`: this request's hold on the version.
    claim: str | None = None
    #: The certificate's current version (its revocation revokes the certificate); an
    #: earlier version still valid is revoked on its own.
    current: bool = True
    seq: int = 0
    serial: str | None = None

    @property
    def record_only(self) -> bool:
        return self.ca is None

    def send_to_ca(self) -> None:
        """Network I/O: the caller runs it with no transaction open, off the event loop."""
        if self.ca is not None and self.leaf_pem is not None:
            self.ca.revoke(self.leaf_pem, self.code)


def prepare_revocation(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    reason: str,
    actor: Actor,
    record_only: bool = False,
) -> Revocation:
    """Checks a revocation and reads what the CA call needs; writes nothing.

    The caller ends its transaction, calls ``send_to_ca()`` and then ``record_revocation``.
    AD CS Web Enrollment cannot revoke: for those certificates an operator revokes on the
    CA and then records it here with ``record_only`` (audited as such)."""
    require(actor, "admin", "Revoking a certificate")
    code = reason_code(reason)
    if cert.status == CertStatus.REVOKED:
        raise Conflict("the certificate is revoked already")
    version = issued_version(session, cert)
    # the CA that issued this version: a fallback issuer's, when one was used
    issuer_id = version.issuer_id or cert.issuer_id
    issuer = issuers.get_issuer(session, project_id=cert.project_id, issuer_id=issuer_id)
    if not issuers.has(issuer, issuer_port.REVOKE):
        if not record_only:
            raise Conflict(
                "AD CS Web Enrollment offers no revocation: revocation is an operator action "
                f"on the CA (Certification Authority console, or certutil -revoke "
                f"{version.serial} {code}). Once done, record it here with "
                '{"reason": "...", "record_only": true}.'
            )
        return Revocation(cert.id, version.id, reason, code, seq=version.seq, serial=version.serial)
    if record_only:
        raise InvalidInput.field(
            "record_only", "is for AD CS certificates; this service revokes ACME ones at the CA"
        )
    leaf = keys.split_pem_chain(material.chain_pem(session, kek, version))[0]
    ca = issuers.connect(session, kek, issuer)  # the issuer's plugin (secrets revealed here)
    return Revocation(
        cert.id,
        version.id,
        reason,
        code,
        leaf_pem=leaf,
        ca=ca,
        seq=version.seq,
        serial=version.serial,
    )


def still_valid_earlier_versions(
    session: Session, cert: Certificate, *, now: datetime
) -> list[CertificateVersion]:
    """Versions other than the current one that are issued, not revoked and not expired:
    a renewal leaves the previous certificate valid until it expires, and revoking only
    the current one would leave it usable (say, after a key compromise)."""
    return list(
        session.scalars(
            select(CertificateVersion)
            .where(
                CertificateVersion.certificate_id == cert.id,
                CertificateVersion.id != cert.current_version_id,
                CertificateVersion.status == VersionStatus.ISSUED,
                CertificateVersion.not_after > now,
            )
            .order_by(CertificateVersion.seq.desc())
        )
    )


def prepare_revocations(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    reason: str,
    actor: Actor,
    now: datetime,
    record_only: bool = False,
    all_versions: bool = False,
) -> list[Revocation]:
    """The current version's revocation (:func:`prepare_revocation`) and, with
    ``all_versions``, one for each earlier version still valid, newest first. A certificate
    revoked already is 409, unless ``all_versions`` finds earlier versions to revoke."""
    if not cert.managed and not record_only:
        raise Conflict(
            "an imported certificate was issued elsewhere: revoke it at its CA, or record the"
            " revocation only (record_only)"
        )
    earlier = still_valid_earlier_versions(session, cert, now=now) if all_versions else []
    revocations: list[Revocation] = []
    if cert.status == CertStatus.REVOKED and earlier:
        require(actor, "admin", "Revoking a certificate")  # the current one is revoked already
    else:  # 409 when the certificate is revoked already and nothing earlier is valid
        revocations.append(
            prepare_revocation(
                session, kek, cert=cert, reason=reason, actor=actor, record_only=record_only
            )
        )
    revocations += [
        _prepare_earlier(session, kek, cert=cert, version=v, reason=reason, record_only=record_only)
        for v in earlier
    ]
    return revocations


def _prepare_earlier(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    version: CertificateVersion,
    reason: str,
    record_only: bool,
) -> Revocation:
    """An earlier version's revocation, told to the CA that issued it (a fallback's too)."""
    code = reason_code(reason)
    issuer_id = version.issuer_id or cert.issuer_id
    issuer = issuers.get_issuer(session, project_id=cert.project_id, issuer_id=issuer_id)
    earlier = Revocation(
        cert.id, version.id, reason, code, current=False, seq=version.seq, serial=version.serial
    )
    if not issuers.has(issuer, issuer_port.REVOKE):
        if not record_only:
            raise Conflict(
                "AD CS Web Enrollment offers no revocation: revoke each version on the CA "
                f"(certutil -revoke {version.serial} {code}), then record it here with "
                '{"reason": "...", "record_only": true, "all_versions": true}.'
            )
        return earlier
    leaf = keys.split_pem_chain(material.chain_pem(session, kek, version))[0]
    return replace(earlier, leaf_pem=leaf, ca=issuers.connect(session, kek, issuer))


def claim_revocation(session: Session, revocation: Revocation, *, now: datetime) -> Revocation:
    """Takes the version's revocation for this request before the CA is called, so that of
    several requests at once (in any number of API processes) exactly one tells the CA and
    records ``cert.revoked``; the others get :class:`Conflict`.

    A compare-and-set on the version row (``UPDATE ... WHERE status = 'issued' AND no live
    claim``): on PostgreSQL a second request waits for the first one's row lock and then
    finds the claim taken; SQLite serializes writers (``db/sqlite_writes``). The caller
    commits at once, then calls the CA, then :func:`record_revocation` (or, when the CA
    refused, :func:`release_revocation`)."""
    claim = new_id()
    taken = session.execute(
        update(CertificateVersion)
        .where(
            CertificateVersion.id == revocation.version_id,
            CertificateVersion.status == VersionStatus.ISSUED,
            or_(
                CertificateVersion.revocation_claim.is_(None),
                CertificateVersion.revocation_claimed_at < now - REVOCATION_CLAIM_TTL,
            ),
        )
        .values(revocation_claim=claim, revocation_claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(ALREADY_REVOKING)
    return replace(revocation, claim=claim)


def release_revocation(session: Session, revocation: Revocation) -> None:
    """The CA refused the revocation: let go of the claim so it may be tried again (only
    this request's own claim). The caller commits."""
    session.execute(
        update(CertificateVersion)
        .where(
            CertificateVersion.id == revocation.version_id,
            CertificateVersion.revocation_claim == revocation.claim,
        )
        .values(revocation_claim=None, revocation_claimed_at=None)
        .execution_options(synchronize_session=False)
    )


def record_revocation(session: Session, revocation: Revocation, *, actor: Actor) -> Certificate:
    """Records a revocation the CA accepted (or an operator made), once: only while this
    request still holds the claim of :func:`claim_revocation`. The caller commits."""
    released = session.execute(
        update(CertificateVersion)
        .where(
            CertificateVersion.id == revocation.version_id,
            CertificateVersion.status == VersionStatus.ISSUED,
            CertificateVersion.revocation_claim == revocation.claim,
        )
        .values(revocation_claim=None, revocation_claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(ALREADY_REVOKING)
    cert = session.get(Certificate, revocation.certificate_id)
    version = session.get(CertificateVersion, revocation.version_id)
    if cert is None or version is None:
        raise NotFound("the certificate was removed meanwhile")
    session.refresh(cert)  # a renewal may have moved it while the CA was asked
    set_committed_value(version, "status", VersionStatus.ISSUED)
    set_committed_value(version, "revocation_claim", None)
    set_committed_value(version, "revocation_claimed_at", None)
    extra: dict[str, Any] = {"record_only": True} if revocation.record_only else {}
    _record_revocation(
        session, cert, version, revocation.reason, actor, extra, current=revocation.current
    )
    return cert


#: RFC 8555 §7.6: the CA does not accept this reason code (acme2certifier: aACompromise).
BAD_REVOCATION_REASON = "urn:ietf:params:acme:error:badRevocationReason"


def refused_revocation(
    session: Session, revocation: Revocation, exc: CertAutoPilotError, *, actor: Actor
) -> CertAutoPilotError:
    """Records the attempt the CA refused on the timeline (``cert.revocation_refused``,
    with the CA's words) and answers the error to raise: a refused reason code is the
    caller's input, a 422 on ``reason``; anything else stays the CA's error. The caller
    commits."""
    problem = getattr(exc, "problem_type", None)
    cert = session.get(Certificate, revocation.certificate_id)
    if cert is not None:
        audit.record(
            session,
            type=EventType.CERT_REVOCATION_REFUSED,
            actor=actor.email,
            project_id=cert.project_id,
            subject_type="certificate",
            subject_id=cert.id,
            detail={
                "reason": revocation.reason,
                "version": revocation.seq,
                "serial": revocation.serial,
                "error": exc.detail,
                **({"problem_type": problem} if problem else {}),
            },
        )
    if problem == BAD_REVOCATION_REASON:
        return InvalidInput.field("reason", f"the CA refused the reason: {exc.detail}")
    return exc


def _record_revocation(
    session: Session,
    cert: Certificate,
    version: CertificateVersion,
    reason: str,
    actor: Actor,
    extra: dict[str, Any],
    *,
    current: bool = True,
) -> None:
    """The version revoked; the certificate too when it is its current version (an earlier
    version's revocation leaves the certificate's status to its current one)."""
    version.status = transition_version(version.status, VersionStatus.REVOKED)
    version.revoked_at = utcnow()
    version.revocation_reason = reason
    if current:
        cert.status = transition(cert.status, CertStatus.REVOKED)
        cert.next_renewal_at = None
        cert.step = None
    else:
        extra = {**extra, "earlier_version": True}
    audit.record(
        session,
        type=EventType.CERT_REVOKED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"reason": reason, "serial": version.serial, "version": version.seq, **extra},
    )
