from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certautopilot.renewal import windows
from certautopilot.renewal.windows import JITTER_FRACTION, renewal_time

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("days", [90, 47, 45, 10])
def test_default_is_one_third_of_lifetime_remaining(days: int) -> None:
    end = START + timedelta(days=days)
    at = renewal_time(not_before=START, not_after=end, window=None, jitter_key="c1")
    remaining = end - at
    lifetime = end - START
    assert lifetime / 3 <= remaining <= lifetime / 3 + lifetime * JITTER_FRACTION


def test_fraction_and_days() -> None:
    end = START + timedelta(days=90)
    frac = renewal_time(
        not_before=START, not_after=end, window={"fraction_remaining": 0.25}, jitter_key="c1"
    )
    assert timedelta(days=22.5) <= end - frac <= timedelta(days=22.5 + 1.8)
    days = renewal_time(
        not_before=START, not_after=end, window={"days_before_expiry": 30}, jitter_key="c1"
    )
    assert timedelta(days=30) <= end - days <= timedelta(days=31.8)


def test_days_never_before_issuance() -> None:
    end = START + timedelta(days=6)
    at = renewal_time(
        not_before=START, not_after=end, window={"days_before_expiry": 30}, jitter_key="c1"
    )
    assert at > START


def test_jitter_is_deterministic_and_spreads() -> None:
    end = START + timedelta(days=90)
    times = {
        renewal_time(not_before=START, not_after=end, window=None, jitter_key=f"c{i}")
        for i in range(50)
    }
    assert len(times) == 50
    again = renewal_time(not_before=START, not_after=end, window=None, jitter_key="c7")
    assert again == renewal_time(not_before=START, not_after=end, window=None, jitter_key="c7")


@pytest.mark.parametrize(
    "lifetime", [timedelta(days=6), timedelta(days=9, hours=23), timedelta(minutes=2)]
)
def test_a_short_lived_certificate_renews_at_half_its_lifetime(lifetime: timedelta) -> None:
    end = START + lifetime
    at = renewal_time(not_before=START, not_after=end, window=None, jitter_key="c1")
    assert lifetime / 2 <= end - at <= lifetime / 2 + lifetime * JITTER_FRACTION
    # an explicit window still wins
    frac = renewal_time(
        not_before=START, not_after=end, window={"fraction_remaining": 0.3}, jitter_key="c1"
    )
    assert lifetime * 0.3 <= end - frac <= lifetime * 0.32


def test_expiry_warnings_follow_the_lifetime() -> None:
    days = [timedelta(days=d) for d in (30, 14, 7, 1)]
    assert windows.warning_thresholds(timedelta(days=90)) == days
    assert windows.warning_thresholds(timedelta(days=45)) == days
    assert windows.warning_thresholds(timedelta(days=20)) == days[1:]
    six = windows.warning_thresholds(timedelta(days=6))
    assert six == [timedelta(days=3), timedelta(days=1)]
    assert [windows.threshold_key(t) for t in six] == ["3", "1"]
    assert windows.threshold_key(timedelta(hours=30)) == "30h"
    assert (
        windows.human(timedelta(days=1)) == "1 day"
        and windows.human(timedelta(hours=30)) == "30 hours"
    )
