"""ride_out: a DNS server that does not answer is waited for, within a budget; a refusal is not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from certautopilot.errors import DNSError, DNSUnavailable
from certautopilot.workflows.outage import OutagePolicy, Retry, ride_out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception, clock: Clock, cost: float = 10.0) -> Callable[[], str]:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        clock.now += cost  # each attempt waits for the server's timeout
        if calls["n"] <= times:
            raise error
        return "published"

    return call


def test_an_outage_is_waited_out_and_each_retry_reported() -> None:
    clock = Clock()
    retries: list[Retry] = []
    call = failing(3, DNSUnavailable("no answer from 127.0.0.1:53"), clock)
    result = ride_out(call, on_retry=retries.append, clock=clock, sleep=clock.sleep)
    assert result == "published"
    assert [(r.attempt, r.delay_seconds) for r in retries] == [(1, 2.0), (2, 4.0), (3, 8.0)]
    assert clock.slept == [2.0, 4.0, 8.0]
    assert "127.0.0.1:53" in str(retries[0].error)


def test_past_the_budget_the_last_error_is_raised() -> None:
    clock = Clock()
    retries: list[Retry] = []
    policy = OutagePolicy(budget_seconds=60)
    call = failing(100, DNSUnavailable("no answer"), clock)
    with pytest.raises(DNSUnavailable):
        ride_out(call, on_retry=retries.append, policy=policy, clock=clock, sleep=clock.sleep)
    # 10 s per attempt: 10+2, +10+4, +10+8, +10 = 54 s; the next wait (16 s) passes 60 s.
    assert [r.attempt for r in retries] == [1, 2, 3]
    assert clock.now <= 60


def test_a_refusal_is_not_retried() -> None:
    clock = Clock()
    retries: list[Retry] = []
    call = failing(1, DNSError("127.0.0.1:53 answered 'update' with REFUSED"), clock)
    with pytest.raises(DNSError, match="REFUSED"):
        ride_out(call, on_retry=retries.append, clock=clock, sleep=clock.sleep)
    assert retries == [] and clock.slept == []


def test_the_wait_doubles_up_to_the_cap() -> None:
    policy = OutagePolicy()
    assert [policy.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 30, 30, 30]
