"""When to renew, and when to warn about an expiry: pure planners with injected time.

Default: when one third of the lifetime remains (90-day, 47-day and 45-day certificates),
or half of it for a short-lived certificate (a lifetime under ten days, e.g. Let's
Encrypt's 6-day ``shortlived`` profile): Let's Encrypt advises renewing those at half their
lifetime so that a failing renewal still has days, not hours, to be retried. The lifetime
is the certificate's own (``not_after - not_before``), whatever profile was asked for. A
certificate may say ``{"fraction_remaining": f}`` or ``{"days_before_expiry": d}`` instead.
A deterministic jitter (a hash of the certificate id, at most 2% of the lifetime, earlier
never later) spreads certificates issued together. A CA's ARI window, when it offers one,
replaces this time (``ari_refresh``).

Expiry warnings (for certificates nobody renews automatically) follow the lifetime too: the
usual 30/14/7/1 days before expiry, only those shorter than the lifetime; a short-lived
certificate is warned at half and at a sixth of its lifetime left (3 days and 1 day for a
6-day certificate), not at once on issuance.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

DEFAULT_FRACTION = 1 / 3
SHORT_LIVED_FRACTION = 1 / 2
SHORT_LIVED = timedelta(days=10)
JITTER_FRACTION = 0.02
WARNING_DAYS = (30, 14, 7, 1)


def is_short_lived(lifetime: timedelta) -> bool:
    return lifetime < SHORT_LIVED


def default_fraction(lifetime: timedelta) -> float:
    """The part of the lifetime left at the default renewal time."""
    return SHORT_LIVED_FRACTION if is_short_lived(lifetime) else DEFAULT_FRACTION


def warning_thresholds(lifetime: timedelta) -> list[timedelta]:
    """Time-before-expiry points to warn at, largest first (see the module docstring)."""
    if is_short_lived(lifetime):
        return [lifetime / 2, lifetime / 6]
    return [timedelta(days=d) for d in WARNING_DAYS if timedelta(days=d) < lifetime]


def threshold_key(before: timedelta) -> str:
    """How a threshold is remembered as sent: whole days as before (``"7"``), else hours."""
    seconds = int(before.total_seconds())
    if seconds % 86400 == 0:
        return str(seconds // 86400)
    return f"{seconds // 3600}h"


def human(before: timedelta) -> str:
    seconds = int(before.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    hours = max(1, round(seconds / 3600))
    return f"{hours} hour{'s' if hours != 1 else ''}"


def renewal_time(
    *,
    not_before: datetime,
    not_after: datetime,
    window: dict[str, Any] | None,
    jitter_key: str,
) -> datetime:
    lifetime = not_after - not_before
    if window and window.get("days_before_expiry") is not None:
        before = timedelta(days=float(window["days_before_expiry"]))
        before = min(before, lifetime * 0.9)
    else:
        fraction = float((window or {}).get("fraction_remaining") or default_fraction(lifetime))
        before = lifetime * fraction
    digest = hashlib.sha256(jitter_key.encode()).digest()
    jitter = lifetime * JITTER_FRACTION * (int.from_bytes(digest[:4], "big") / 2**32)
    return not_after - before - jitter
