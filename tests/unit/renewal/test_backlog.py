"""When a renewal backlog clears: the tick's pace, and an account's order budget."""

from __future__ import annotations

from datetime import timedelta

from certautopilot.renewal.backlog import Budget, Pace, drain_seconds

PACE = Pace(batch=200, tick=timedelta(seconds=30))
LETS_ENCRYPT = Budget(cap=270, window=timedelta(hours=3), free=270)  # 300 / 3 h at 90 %


def test_nothing_waiting_clears_now() -> None:
    assert drain_seconds(0, pace=PACE, budget=LETS_ENCRYPT) == 0


def test_within_the_budget_the_ticks_pace_it() -> None:
    assert drain_seconds(150, pace=PACE, budget=LETS_ENCRYPT) == 30  # one tick
    assert drain_seconds(250, pace=PACE, budget=LETS_ENCRYPT) == 60  # two ticks of 200
    assert drain_seconds(100_000, pace=PACE, budget=None) == 500 * 30  # no budget (AD CS)


def test_over_the_budget_it_waits_whole_windows() -> None:
    # A storm of 100,000 on one Let's Encrypt account: 270 now, then 270 every 3 hours.
    windows = -(-(100_000 - 270) // 270)
    assert drain_seconds(100_000, pace=PACE, budget=LETS_ENCRYPT) == windows * 3 * 3600
    spent = Budget(cap=270, window=timedelta(hours=3), free=0)
    assert drain_seconds(271, pace=PACE, budget=spent) == 2 * 3 * 3600
    assert drain_seconds(270, pace=PACE, budget=spent) == 3 * 3600
