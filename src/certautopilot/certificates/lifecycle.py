"""Downloads and revocation of issued versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

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
from certautopilot.distribution import service as distribution
from certautopilot.errors import Conflict, InvalidInput, NotFound
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers

DOWNLOADS = ("fullchain", "chain", "cert", "key")


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
    issuer = issuers.get_issuer(session, project_id=cert.project_id, issuer_id=cert.issuer_id)
    if not issuers.has(issuer, issuer_port.REVOKE):
        if not record_only:
            raise Conflict(
                "AD CS Web Enrollment offers no revocation: revocation is an operator action "
                f"on the CA (Certification Authority console, or certutil -revoke "
                f"{version.serial} {code}). Once done, record it here with "
                '{"reason": "...", "record_only": true}.'
            )
        return Revocation(cert.id, version.id, reason, code)
    if record_only:
        raise InvalidInput.field(
            "record_only", "is for AD CS certificates; this service revokes ACME ones at the CA"
        )
    leaf = keys.split_pem_chain(material.chain_pem(session, kek, version))[0]
    ca = issuers.connect(session, kek, issuer)  # the issuer's plugin (secrets revealed here)
    return Revocation(cert.id, version.id, reason, code, leaf_pem=leaf, ca=ca)


def record_revocation(session: Session, revocation: Revocation, *, actor: Actor) -> Certificate:
    """Records a revocation the CA accepted (or an operator made). The caller commits."""
    cert = session.get(Certificate, revocation.certificate_id)
    version = session.get(CertificateVersion, revocation.version_id)
    if cert is None or version is None:
        raise NotFound("the certificate was removed meanwhile")
    extra: dict[str, Any] = {"record_only": True} if revocation.record_only else {}
    _record_revocation(session, cert, version, revocation.reason, actor, extra)
    return cert


def _record_revocation(
    session: Session,
    cert: Certificate,
    version: CertificateVersion,
    reason: str,
    actor: Actor,
    extra: dict[str, Any],
) -> None:
    version.status = transition_version(version.status, VersionStatus.REVOKED)
    version.revoked_at = utcnow()
    version.revocation_reason = reason
    cert.status = transition(cert.status, CertStatus.REVOKED)
    cert.next_renewal_at = None
    cert.step = None
    audit.record(
        session,
        type=EventType.CERT_REVOKED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"reason": reason, "serial": version.serial, "version": version.seq, **extra},
    )
