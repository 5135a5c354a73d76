from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id


class DnsZone(Base):
    __tablename__ = "dns_zones"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(253))
    provider: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    nameservers: Mapped[list[str]] = mapped_column(default=list)
    propagation_timeout_seconds: Mapped[int] = mapped_column(default=120)
    # disabled: no DNS-01 record is written in the zone (migration 0026_zone_enabled)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __init__(self, **values: Any) -> None:
        # a zone is enabled from the start, also before it is flushed (routing reads it)
        values.setdefault("enabled", True)
        super().__init__(**values)
