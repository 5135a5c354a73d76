"""When to renew: a pure planner with injected time.

Default: when one third of the lifetime remains, so 90-day, 47-day and 6-day certificates
all renew sensibly. A certificate may say ``{"fraction_remaining": f}`` or
``{"days_before_expiry": d}`` instead. A deterministic jitter (a hash of the certificate id,
at most 2% of the lifetime, earlier never later) spreads certificates issued together.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

DEFAULT_FRACTION = 1 / 3
JITTER_FRACTION = 0.02


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
        fraction = float((window or {}).get("fraction_remaining") or DEFAULT_FRACTION)
        before = lifetime * fraction
    digest = hashlib.sha256(jitter_key.encode()).digest()
    jitter = lifetime * JITTER_FRACTION * (int.from_bytes(digest[:4], "big") / 2**32)
    return not_after - before - jitter
