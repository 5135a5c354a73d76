"""What the renewal scheduler remembers per certificate, and the new orders it has placed.

``RenewalState`` holds the scheduler's own bookkeeping, apart from the certificate row:
the renewal it started and is waiting on, how many attempts failed in a row (the backoff
survives restarts), which expiry warnings were sent, the ACME profile to order with, and the
CA's last suggested renewal window (ARI) with when to ask again.
``OrderLog`` counts every new ACME order (first issuances, renewals by hand and scheduled
ones), one row per order and registered domain, for the rate-limit budget: per ACME account
(issuer), per registered domain and per exact set of names at the same CA (``ca_key``).
``version_id`` makes counting idempotent: one order per certificate version.
``SchedulerLease`` is the row a renewal tick holds while it runs (``renewal/lease.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id


class RenewalState(Base):
    __tablename__ = "renewal_states"
    __table_args__ = (
        # version_id first: the reconcile (renewals under way) and the ARI check's due rows
        # (idle: version_id IS NULL, by ari_next_check_at)
        Index("ix_renewal_states_ari_check", "version_id", "ari_next_check_at"),
        # the backlog's "held back by the budget" count, read on every inventory page
        Index("ix_renewal_states_deferred_at", "deferred_at"),
    )

    certificate_id: Mapped[str] = mapped_column(
        ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    from_version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    gave_up_at: Mapped[datetime | None] = mapped_column(default=None)
    warnings_sent: Mapped[list[str]] = mapped_column(default=list)
    acme_profile: Mapped[str | None] = mapped_column(String(64), default=None)
    ari_window: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    ari_next_check_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the budget last deferred it: one ``renewal.deferred`` per budget window.
    deferred_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OrderLog(Base):
    __tablename__ = "renewal_order_log"
    __table_args__ = (
        Index("ix_renewal_order_log_issuer_at", "issuer_id", "at"),
        Index("ix_renewal_order_log_domain_at", "registered_domain", "at"),
        Index("ix_renewal_order_log_names_at", "names_key", "at"),
        Index(
            "uq_renewal_order_log_version_domain", "version_id", "registered_domain", unique=True
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    issuer_id: Mapped[str] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    registered_domain: Mapped[str] = mapped_column(String(253))
    certificate_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # Null on rows written before migration 0008 (they still count, for every CA).
    version_id: Mapped[str | None] = mapped_column(String(32), default=None)
    names_key: Mapped[str | None] = mapped_column(String(64), default=None)
    ca_key: Mapped[str | None] = mapped_column(String(64), default=None)


class SchedulerLease(Base):
    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The DBOS workflow id of the tick holding it; None: free.
    holder: Mapped[str | None] = mapped_column(String(200), default=None)
    acquired_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
