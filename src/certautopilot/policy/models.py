from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base


class ProjectPolicy(Base):
    """A project's policy rules (see ``policy.schemas.PolicyRules``); absent means no rules."""

    __tablename__ = "project_policies"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(320), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
