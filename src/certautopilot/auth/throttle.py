"""The sign-in throttle's rules, a pure planner with injected time.

One counter per account (the e-mail typed, whether or not such a user exists, so a locked
answer says nothing about who has an account) and one per client address. Every attempt
counts as a failure when it starts (so a burst of parallel guesses is counted before any
password is checked); a right password then resets the account's counter and gives the
address its attempt back. When a counter reaches its limit (5 per account, 20 per
address), the key is locked for ``base`` seconds (30), doubling with each further failure
up to ``cap`` (15 minutes), never longer: the real user can always try again soon. While
locked, attempts are refused without checking the password and are not counted. After
``forget`` seconds (1 hour) without an attempt a counter starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottlePolicy:
    account_failures: int = 5
    address_failures: int = 20
    base_seconds: float = 30.0
    cap_seconds: float = 900.0
    forget_seconds: float = 3600.0


@dataclass(frozen=True)
class Counter:
    failures: int = 0
    last_at: datetime | None = None
    locked_until: datetime | None = None


def lockout_seconds(failures: int, *, limit: int, policy: ThrottlePolicy) -> float:
    """How long the ``failures``-th failure in a row locks the key (0 below the limit)."""
    if failures < limit:
        return 0.0
    return min(policy.cap_seconds, policy.base_seconds * 2.0 ** min(failures - limit, 64))


def retry_after(counter: Counter, now: datetime) -> float | None:
    """Seconds until the key may try again, or None when it is not locked."""
    if counter.locked_until is None or counter.locked_until <= now:
        return None
    return (counter.locked_until - now).total_seconds()


def count_attempt(
    counter: Counter, now: datetime, *, limit: int, policy: ThrottlePolicy
) -> Counter:
    """The counter after one more (not yet checked) attempt; the caller has made sure the
    key is not locked (:func:`retry_after` is None)."""
    stale = counter.last_at is None or now - counter.last_at > timedelta(
        seconds=policy.forget_seconds
    )
    failures = (0 if stale else counter.failures) + 1
    wait = lockout_seconds(failures, limit=limit, policy=policy)
    return Counter(
        failures=failures,
        last_at=now,
        locked_until=now + timedelta(seconds=wait) if wait else None,
    )


def give_back(counter: Counter, *, counted: Counter) -> Counter:
    """The address's counter (as it is now) after the attempt that :func:`count_attempt`
    made ``counted`` proved right: it is not a failure after all, and a lock it set is
    lifted (a lock a later failure set stays)."""
    own_lock = counter.locked_until is not None and counter.locked_until == counted.locked_until
    return Counter(
        failures=max(counter.failures - 1, 0),
        last_at=counter.last_at,
        locked_until=None if own_lock else counter.locked_until,
    )
