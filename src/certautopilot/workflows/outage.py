"""Riding out a DNS server that does not answer, with injected time.

Why: a zone's DNS server that is restarted, overloaded or briefly unreachable while a
certificate is being issued is an everyday event. Failing the certificate would put a
person to work (and, for a renewal, wait for the renewal backoff); the order at the CA stays
valid for hours, so waiting a few minutes for the server costs nothing. A server that
answers "no" (bad key, unknown zone: a plain ``DNSError``) is not waited for.

How: ``ride_out`` calls ``call`` until it succeeds, retrying only ``DNSUnavailable``, after
2, 4, 8, 16, 30, 30 … seconds, while the outage has lasted less than the budget; each retry
is reported to ``on_retry`` first (the timeline's ``dns.server.unavailable``). Past the
budget the last error is raised and the certificate fails with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from certautopilot.errors import DNSUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class OutagePolicy:
    budget_seconds: float = 180.0
    first_delay_seconds: float = 2.0
    max_delay_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure in a row (``attempt`` >= 1)."""
        return min(self.max_delay_seconds, self.first_delay_seconds * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class Retry:
    """What ``on_retry`` is told: the error, which failure it was, the wait before the next."""

    error: DNSUnavailable
    attempt: int
    delay_seconds: float


def ride_out(
    call: Callable[[], T],
    *,
    on_retry: Callable[[Retry], None],
    policy: OutagePolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    policy = policy or OutagePolicy()
    started = clock()
    attempt = 0
    while True:
        try:
            return call()
        except DNSUnavailable as exc:
            attempt += 1
            delay = policy.delay(attempt)
            if clock() - started + delay > policy.budget_seconds:
                raise
            on_retry(Retry(exc, attempt, delay))
            sleep(delay)
