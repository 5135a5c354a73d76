"""Injected time. Rules about windows and expiry take a ``now``; callers pass ``utcnow()``."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC by construction."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def scheduler_now() -> datetime:
    """The renewal scheduler's clock: ``utcnow()`` moved by ``CERTAUTOPILOT_CLOCK_OFFSET_SECONDS``
    (unset in production; tests set it in a worker's environment to bring renewals forward)."""
    offset = float(os.environ.get("CERTAUTOPILOT_CLOCK_OFFSET_SECONDS") or 0)
    return utcnow() + timedelta(seconds=offset)
