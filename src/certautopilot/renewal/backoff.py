"""Per-certificate exponential backoff with jitter, a pure planner with injected time.

The n-th failed attempt in a row waits ``base * 2**(n-1)`` (at most ``cap``), of which a
deterministic share in [50 %, 100 %] is kept ("equal jitter", keyed by certificate and
attempt) so certificates that failed together do not retry together. A CA's ``Retry-After``
is a floor. The attempt count lives in the database, so the backoff survives restarts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class BackoffPolicy:
    base_seconds: float = 300.0
    cap_seconds: float = 6 * 3600.0
    max_attempts: int = 5


def _unit(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def delay_seconds(attempt: int, *, policy: BackoffPolicy, key: str) -> float:
    """The wait after the ``attempt``-th failure in a row (``attempt`` >= 1)."""
    raw = min(policy.cap_seconds, policy.base_seconds * 2.0 ** max(attempt - 1, 0))
    return raw * (0.5 + 0.5 * _unit(f"{key}:{attempt}"))


def next_attempt_at(
    now: datetime,
    attempt: int,
    *,
    policy: BackoffPolicy,
    key: str,
    retry_after_seconds: float | None = None,
) -> datetime | None:
    """When to try again after ``attempt`` failures, or None when the attempts are spent."""
    if attempt >= policy.max_attempts:
        return None
    wait = delay_seconds(attempt, policy=policy, key=key)
    if retry_after_seconds is not None:
        wait = max(wait, retry_after_seconds)
    return now + timedelta(seconds=wait)
