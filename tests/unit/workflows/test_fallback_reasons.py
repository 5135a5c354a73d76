"""Which failures of ``begin`` make the issuance fall back to the next issuer, and which do
not (another CA would refuse a bad name just the same)."""

from __future__ import annotations

from dbos import error as dbos_error

from certautopilot.errors import (
    CaaForbidden,
    DNSError,
    IssuerError,
    RateLimited,
    TransientIssuerError,
)
from certautopilot.workflows.fallback import Reason, reason_of


def test_unreachable_after_the_steps_retries() -> None:
    exc = dbos_error.DBOSMaxStepRetriesExceeded(
        "acme.begin", 3, [TransientIssuerError("ACME request failed: connection refused")]
    )
    found = reason_of(exc)
    assert found is not None and found[0] is Reason.UNREACHABLE
    assert "connection refused" in found[1] and "3 attempts" in found[1]


def test_a_429_with_a_long_retry_after() -> None:
    exc = TransientIssuerError(
        "too many new orders", "urn:ietf:params:acme:error:rateLimited", 3600
    )
    assert reason_of(exc) == (
        Reason.RATE_LIMITED,
        "too many new orders (Retry-After 3600 s)",
    )


def test_caa_and_budget() -> None:
    assert reason_of(CaaForbidden("CAA does not allow pebble"))[0] is Reason.CAA  # type: ignore[index]
    limited = RateLimited("spent", "orders_per_account", "2026-12-03T14:00:00+00:00", 60.0)
    assert reason_of(limited)[0] is Reason.BUDGET  # type: ignore[index]


def test_refusals_another_ca_would_repeat_do_not_fall_back() -> None:
    assert (
        reason_of(
            IssuerError("rejectedIdentifier", "urn:ietf:params:acme:error:rejectedIdentifier")
        )
        is None
    )
    assert reason_of(DNSError("the zone refused the update")) is None
    retried = dbos_error.DBOSMaxStepRetriesExceeded("acme.begin", 3, [DNSError("down")])
    assert reason_of(retried) is None
