from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.certificates.states import CertStatus, VersionStatus
from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id


class Certificate(Base):
    """A named certificate of a project; each issuance or renewal adds a CertificateVersion.

    ``names`` holds every DNS name, the common name first. Search and renewal read the
    plain columns (names, not_after, next_renewal_at); the certificate itself is encrypted.
    """

    __tablename__ = "certificates"
    __table_args__ = (
        # The inventory's sorts page on (key, id) within a project: one index per key
        # (migration 0007; bench/inventory.py measures them).
        Index("ix_certificates_project_status", "project_id", "status", "id"),
        Index("ix_certificates_project_not_after", "project_id", "not_after", "id"),
        Index("ix_certificates_project_created_at", "project_id", "created_at", "id"),
        Index("ix_certificates_project_common_name", "project_id", "common_name", "id"),
        Index("ix_certificates_project_issuer", "project_id", "issuer_id", "not_after"),
        Index("ix_certificates_next_renewal", "next_renewal_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"))
    common_name: Mapped[str] = mapped_column(String(253))
    names: Mapped[list[str]] = mapped_column(default=list)
    key_type: Mapped[str] = mapped_column(String(16))
    auto_renew: Mapped[bool] = mapped_column(default=True)
    auto_renew_disabled_reason: Mapped[str | None] = mapped_column(String(300), default=None)
    renewal_window: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    challenge_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    csr_provided: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(32), default=CertStatus.REQUESTED)
    step: Mapped[str | None] = mapped_column(String(64), default=None)
    pending_action: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    current_version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    next_renewal_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CertificateVersion(Base):
    __tablename__ = "certificate_versions"
    __table_args__ = (UniqueConstraint("certificate_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    certificate_id: Mapped[str] = mapped_column(
        ForeignKey("certificates.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(String(16), default="issue")
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.PENDING)
    key_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    csr_pem: Mapped[str | None] = mapped_column(Text, default=None)
    order_url: Mapped[str | None] = mapped_column(String(500), default=None)
    chain_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    serial: Mapped[str | None] = mapped_column(String(64), default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    fingerprint_sha256: Mapped[str | None] = mapped_column(String(95), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
