from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, true
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
        # the renewal tick's due scan in urgency order (``renewal/scheduler._due``): in a
        # storm it reads the first rows of this index instead of sorting every due row
        Index(
            "ix_certificates_due",
            "auto_renew",
            "csr_provided",
            "not_after",
            "next_renewal_at",
            "id",
        ),
        Index("ix_certificates_project_managed", "project_id", "managed", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id"))
    # Ordered fallback issuers (``workflows.fallback``); None: the project policy's.
    fallback_issuer_ids: Mapped[list[str] | None] = mapped_column(default=None)
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
    # False: imported (``certificates.imports``), watched for expiry but never renewed
    # until adopted; ``import_source`` says from what (pem, pkcs12, certbot, acme.sh) and
    # ``import_meta`` what the other tool said of it (ACME server, authenticator...).
    managed: Mapped[bool] = mapped_column(default=True, server_default=true())
    import_source: Mapped[str | None] = mapped_column(String(16), default=None)
    import_meta: Mapped[dict[str, Any] | None] = mapped_column(default=None)


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
    # The issuer this version is ordered from; None: the certificate's (a fallback sets it).
    issuer_id: Mapped[str | None] = mapped_column(String(32), default=None)
    chain_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    serial: Mapped[str | None] = mapped_column(String(64), default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    fingerprint_sha256: Mapped[str | None] = mapped_column(String(95), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # A revocation under way (lifecycle.claim_revocation): the request that holds it, since
    # when; both None otherwise. One request at a time may tell the CA (migration 0010).
    revocation_claim: Mapped[str | None] = mapped_column(String(32), default=None)
    revocation_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """The first answer to a certificate request sent with an ``Idempotency-Key`` header.

    One row per project, caller and key: the unique constraint is what lets exactly one of
    several concurrent requests with the same key create a certificate (the others' insert
    fails, they roll back and answer this row). ``fingerprint`` is a SHA-256 of the request
    body, so the same key with another body is refused; ``response`` is the answer's JSON
    (a certificate resource: no secret). Rows are dropped once ``expires_at`` is past."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("project_id", "user_id", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column()
    response: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class CertificateExpiryCount(Base):
    """How many certificates of a project and issuer, not revoked, expire on a UTC day
    (``YYYY-MM-DD``): what the expiry chart reads instead of scanning certificates.

    Written only by the database's triggers on ``certificates`` (migration 0011), never by
    the application: every insert, delete or change of project, issuer, ``not_after`` or
    status keeps it exact whichever code path (or cascade) made it."""

    __tablename__ = "certificate_expiry_counts"

    project_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    issuer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    n: Mapped[int] = mapped_column()
