"""The sign-in throttle's planner (auth.throttle): limits, doubling, the cap, forgetting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher

from certautopilot.auth import service as auth
from certautopilot.auth.throttle import (
    Counter,
    ThrottlePolicy,
    count_attempt,
    give_back,
    lockout_seconds,
    retry_after,
)

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
POLICY = ThrottlePolicy()


def test_the_fifth_failure_locks_for_30_seconds_then_each_doubles_up_to_15_minutes() -> None:
    counter, now = Counter(), T0
    for n in range(1, 5):
        counter = count_attempt(counter, now, limit=5, policy=POLICY)
        assert counter.failures == n and retry_after(counter, now) is None
    waits = []
    for _ in range(8):
        counter = count_attempt(counter, now, limit=5, policy=POLICY)
        wait = retry_after(counter, now)
        assert wait is not None
        waits.append(wait)
        assert retry_after(counter, now + timedelta(seconds=wait)) is None  # never forever
        now += timedelta(seconds=wait)
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]


def test_the_lockout_is_bounded_however_many_failures() -> None:
    assert lockout_seconds(4, limit=5, policy=POLICY) == 0
    assert lockout_seconds(10**6, limit=5, policy=POLICY) == 900


def test_an_hour_without_attempts_starts_the_count_over() -> None:
    counter = Counter()
    for i in range(4):
        counter = count_attempt(counter, T0 + timedelta(seconds=i), limit=5, policy=POLICY)
    later = T0 + timedelta(hours=1, seconds=10)
    counter = count_attempt(counter, later, limit=5, policy=POLICY)
    assert counter.failures == 1 and retry_after(counter, later) is None


def test_a_right_password_gives_the_address_its_attempt_back() -> None:
    before = Counter()
    for i in range(19):
        before = count_attempt(before, T0 + timedelta(seconds=i), limit=20, policy=POLICY)
    now = T0 + timedelta(seconds=30)
    counted = count_attempt(before, now, limit=20, policy=POLICY)  # the 20th: locked
    assert retry_after(counted, now) == 30
    back = give_back(counted, counted=counted)
    assert back.failures == 19 and retry_after(back, now) is None
    # A lock set by a later failure (another attempt in between) stays.
    later = count_attempt(counted, now, limit=20, policy=POLICY)
    assert retry_after(give_back(later, counted=counted), now) == 60


def test_the_dummy_hash_has_the_parameters_real_hashes_get() -> None:
    """An unknown e-mail verifies DUMMY_HASH: it must cost what a user's hash costs."""
    hasher = PasswordHasher()
    assert not hasher.check_needs_rehash(auth.DUMMY_HASH)
    assert auth.DUMMY_HASH.split("$")[:4] == hasher.hash("x").split("$")[:4]
