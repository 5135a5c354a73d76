from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import JSON

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id
from certautopilot.notifications.states import DeliveryStatus


class NotificationChannel(Base):
    """Where a project's notifications go: email over SMTP, or a webhook.

    ``config`` holds no secret; the SMTP password or webhook signing secret is a StoredSecret.
    """

    __tablename__ = "notification_channels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One message to one channel; delivered by a durable workflow with retries."""

    __tablename__ = "notifications_outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    channel_id: Mapped[str] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(64))
    certificate_id: Mapped[str | None] = mapped_column(String(32), default=None)
    recipients: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500), default=None)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class ExpiryAlertRule(Base):
    """A project's expiry alert rule: the days before expiry at which every certificate,
    managed or imported, is listed in the daily digest. No row: the defaults."""

    __tablename__ = "expiry_alert_rules"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    thresholds_days: Mapped[list[int]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExpiryDigest(Base):
    """The one expiry digest of a project on a UTC day (``YYYY-MM-DD``): the unique
    constraint is what keeps two ticks (or two workers) from sending a second one."""

    __tablename__ = "expiry_digests"
    __table_args__ = (UniqueConstraint("project_id", "day"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    day: Mapped[str] = mapped_column(String(10))
    certificates: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExpiryAlertMark(Base):
    """A threshold a certificate version was listed for: each is listed once."""

    __tablename__ = "expiry_alert_marks"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("certificate_versions.id", ondelete="CASCADE"), primary_key=True
    )
    threshold_days: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[str] = mapped_column(String(32))
