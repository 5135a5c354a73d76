"""Distribution targets, their attachment to certificates, and deployments.

``DistributionTarget.config`` holds no secret: credentials (SSH keys, HMAC secrets, cloud
keys, tokens, PKCS#12 passwords) are one encrypted JSON document in ``StoredSecret``.
``CertificateTarget.state`` keeps what a target hands back and a later deployment needs
(the ACM certificate ARN to re-import into, the last Vault KV version).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id
from certautopilot.distribution.states import DeployStatus


class DistributionTarget(Base):
    __tablename__ = "distribution_targets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    #: False: disabled, receives no deployment (settings and attachments kept).
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CertificateTarget(Base):
    """A target attached to a certificate: every new version is deployed there."""

    __tablename__ = "certificate_targets"

    certificate_id: Mapped[str] = mapped_column(
        ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True
    )
    target_id: Mapped[str] = mapped_column(
        ForeignKey("distribution_targets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Deployment(Base):
    """One version of a certificate delivered (or being delivered) to one target.

    ``status``: pending → running → succeeded | failed, or ``retrying`` between attempts;
    ``superseded`` when a newer version reached the target first.
    """

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_cert_target", "certificate_id", "target_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificates.id", ondelete="CASCADE"))
    target_id: Mapped[str] = mapped_column(
        ForeignKey("distribution_targets.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[str] = mapped_column(
        ForeignKey("certificate_versions.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(String(16), default="issued")
    status: Mapped[str] = mapped_column(String(16), default=DeployStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    requested_by: Mapped[str] = mapped_column(String(320), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
