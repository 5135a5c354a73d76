"""AD CS state: the template of each certificate, and the CA request of each version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base
from certautopilot.issuers.adcs.states import AdcsStatus


class AdcsProfile(Base):
    """Which template (AD CS profile) a certificate on an ``adcs`` issuer enrolls in."""

    __tablename__ = "adcs_certificate_profiles"

    certificate_id: Mapped[str] = mapped_column(
        ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True
    )
    template: Mapped[str] = mapped_column(String(100))


class AdcsRequest(Base):
    """The CA's request for one certificate version.

    ``request_id`` is the CA's ReqID once the submission came back; a retried step reuses
    it instead of submitting again. ``status``: submitted | pending | issued | denied.
    """

    __tablename__ = "adcs_requests"
    __table_args__ = (Index("ix_adcs_requests_certificate", "certificate_id"),)

    version_id: Mapped[str] = mapped_column(
        ForeignKey("certificate_versions.id", ondelete="CASCADE"), primary_key=True
    )
    certificate_id: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[int | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default=AdcsStatus.SUBMITTED)
    disposition: Mapped[str | None] = mapped_column(String(500), default=None)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    checks: Mapped[int] = mapped_column(default=0)
