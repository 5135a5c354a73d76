"""Rate-limit budget of new ACME orders, a pure check with injected time and counts.

Defaults follow Let's Encrypt's published limits: 300 new orders per account per 3 hours,
50 certificates per registered domain per 7 days, and 5 certificates for the exact same
set of names per 7 days ("duplicate certificates"). Every new order counts - first
issuances, renewals by hand and scheduled renewals. Scheduled renewals stay inside a share
of each limit (90 % by default) so people requesting by hand are not starved; a person's
request may use the whole limit (``share=1.0``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# A few multi-label public suffixes; without a Public Suffix List dependency the
# registered domain of anything else is its last two labels.
_TWO_LABEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.nz",
        "co.jp", "ne.jp", "com.br", "com.cn", "co.in", "co.za", "com.mx", "com.tr",
    }
)  # fmt: skip

ACCOUNT = "orders_per_account"
DOMAIN = "certs_per_domain"
DUPLICATE = "duplicate_certificates"


def registered_domain(name: str) -> str:
    labels = name.lower().rstrip(".").removeprefix("*.").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def names_key(names: Iterable[str]) -> str:
    """SHA-256 (hex) of the exact set of names, case and order ignored: the key of the
    duplicate-certificate limit."""
    canonical = ",".join(sorted({n.lower().rstrip(".") for n in names}))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Limits:
    """The limits in force; ``config.Settings.rate_limits`` parses them from the
    ``CERTAUTOPILOT_RENEWAL_*`` variables."""

    orders_per_account: int = 300
    account_window: timedelta = timedelta(hours=3)
    certs_per_domain: int = 50
    domain_window: timedelta = timedelta(days=7)
    duplicate_certs: int = 5
    duplicate_window: timedelta = timedelta(days=7)
    share: float = 0.9


@dataclass(frozen=True)
class Verdict:
    """``limit`` names the limit that is full (``orders_per_account``, ``certs_per_domain``,
    ``duplicate_certificates``); ``retry_at`` is when one more order fits again."""

    allowed: bool
    retry_at: datetime | None = None
    reason: str | None = None
    limit: str | None = None
    cap: int | None = None
    window: timedelta | None = None


def deferral_is_news(deferred_at: datetime | None, *, now: datetime, window: timedelta) -> bool:
    """Whether deferring a renewal at ``now`` is worth a ``renewal.deferred`` event: a
    certificate that keeps waiting for the same budget is recorded once per budget window
    (when it was first deferred, then again only a whole ``window`` later), not per tick."""
    return deferred_at is None or deferred_at <= now - window


def cap(limit: int, share: float) -> int:
    """How many orders of ``limit`` a caller with ``share`` of it may place."""
    return max(1, int(limit * share))


def _human(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def _full(
    times: Iterable[datetime], *, now: datetime, window: timedelta, cap: int
) -> datetime | None:
    """When the count inside ``window`` drops below ``cap`` again, or None if it is below."""
    recent = sorted(t for t in times if t > now - window)
    if len(recent) < cap:
        return None
    return recent[len(recent) - cap] + window


def check(
    *,
    now: datetime,
    limits: Limits,
    account_orders: list[datetime],
    domain_orders: dict[str, list[datetime]],
    duplicate_orders: list[datetime] | None = None,
    share: float | None = None,
) -> Verdict:
    """Whether one more order fits: ``account_orders`` are the account's recent order times,
    ``domain_orders`` the recent ones of each registered domain the certificate names,
    ``duplicate_orders`` those for the exact same set of names. ``share`` is the part of
    each limit the caller may use (default ``limits.share``, for scheduled renewals).
    When it does not fit, ``retry_at`` is when the oldest counted order leaves the window."""
    share = limits.share if share is None else share
    most = cap(limits.orders_per_account, share)
    retry = _full(account_orders, now=now, window=limits.account_window, cap=most)
    if retry is not None:
        return Verdict(
            False,
            retry,
            f"{most} new orders on this ACME account in the last {_human(limits.account_window)} "
            "use up its budget",
            ACCOUNT,
            most,
            limits.account_window,
        )
    most = cap(limits.certs_per_domain, share)
    for domain, times in sorted(domain_orders.items()):
        retry = _full(times, now=now, window=limits.domain_window, cap=most)
        if retry is not None:
            return Verdict(
                False,
                retry,
                f"{most} certificates for {domain} in the last "
                f"{_human(limits.domain_window)} use up its budget",
                DOMAIN,
                most,
                limits.domain_window,
            )
    most = cap(limits.duplicate_certs, share)
    retry = _full(duplicate_orders or [], now=now, window=limits.duplicate_window, cap=most)
    if retry is not None:
        return Verdict(
            False,
            retry,
            f"{most} certificates for exactly these names in the last "
            f"{_human(limits.duplicate_window)} use up their budget",
            DUPLICATE,
            most,
            limits.duplicate_window,
        )
    return Verdict(True)
