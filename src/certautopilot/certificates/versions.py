"""Every version of a certificate: a renewal keeps the previous one, readable and
downloadable until it expires (or is revoked), so a deployment can still fall back to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.auth.service import Actor
from certautopilot.certificates import lifecycle
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import InvalidInput, NotFound

DOWNLOADS = ("fullchain", "chain", "cert", "key")


def list_versions(session: Session, cert: Certificate) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(CertificateVersion)
        .where(CertificateVersion.certificate_id == cert.id)
        .order_by(CertificateVersion.seq.desc())
    )
    return [
        {
            "seq": v.seq,
            "reason": v.reason,
            "status": v.status,
            "current": v.id == cert.current_version_id,
            "serial": v.serial,
            "not_before": v.not_before,
            "not_after": v.not_after,
            "fingerprint_sha256": v.fingerprint_sha256,
            "revoked_at": v.revoked_at,
            "created_at": v.created_at,
        }
        for v in rows
    ]


def download_version(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    seq: int,
    what: str,
    actor: Actor,
    now: datetime,
) -> str:
    if what not in DOWNLOADS:
        raise InvalidInput.field("what", f"must be one of {', '.join(DOWNLOADS)}")
    version = session.scalar(
        select(CertificateVersion).where(
            CertificateVersion.certificate_id == cert.id, CertificateVersion.seq == seq
        )
    )
    if version is None or version.chain_secret_id is None or version.not_after is None:
        raise NotFound(f"version {seq} of this certificate was never issued")
    if version.not_after <= now:
        raise NotFound(f"version {seq} expired at {version.not_after.isoformat()}")
    if version.revoked_at is not None:
        raise NotFound(f"version {seq} was revoked")
    return lifecycle.pem_of(session, kek, cert=cert, version=version, what=what, actor=actor)
