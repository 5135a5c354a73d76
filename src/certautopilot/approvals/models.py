from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.approvals.states import RequestStatus
from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id


class ApprovalRequest(Base):
    """A certificate request waiting for an approver (policy ``approval_required``)."""

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_project_status", "project_id", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    certificate_id: Mapped[str] = mapped_column(
        ForeignKey("certificates.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[str] = mapped_column(String(32))
    requester_id: Mapped[str] = mapped_column(String(32))
    requester_email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    override: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    decided_by: Mapped[str | None] = mapped_column(String(320), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
