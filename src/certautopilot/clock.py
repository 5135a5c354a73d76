"""Injected time. Rules about windows and expiry take a ``now``; callers pass ``utcnow()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC by construction."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def scheduler_now(offset_seconds: float = 0.0) -> datetime:
    """The renewal scheduler's clock: ``utcnow()`` moved by ``offset_seconds``
    (``Settings.clock_offset_seconds``, from ``CERTAUTOPILOT_CLOCK_OFFSET_SECONDS``: zero in
    production; tests set it in a worker's environment to bring renewals forward)."""
    return utcnow() + timedelta(seconds=offset_seconds)
