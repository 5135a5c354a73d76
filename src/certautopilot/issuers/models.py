from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id


class IssuerStatus(StrEnum):
    ACTIVE = "active"
    #: No new orders: new requests, renewals and fallbacks refuse it (its certificates stay
    #: valid, and are warned about as they near expiry).
    DISABLED = "disabled"


class Issuer(Base):
    """An ACME account or an AD CS profile. ``config`` holds no secret (see StoredSecret)."""

    __tablename__ = "issuers"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=IssuerStatus.ACTIVE)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    account_key_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    eab_hmac_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
