"""Rate-limit budget of new orders, a pure check with injected time and counts.

Defaults follow Let's Encrypt's published limits: 300 new orders per account per 3 hours,
50 certificates per registered domain per 7 days. Scheduled renewals stay inside a share
of each (90 % by default) so people requesting by hand are not starved.
"""

from __future__ import annotations

import os
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


def registered_domain(name: str) -> str:
    labels = name.lower().rstrip(".").removeprefix("*.").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


@dataclass(frozen=True)
class Limits:
    orders_per_account: int = 300
    account_window: timedelta = timedelta(hours=3)
    certs_per_domain: int = 50
    domain_window: timedelta = timedelta(days=7)
    share: float = 0.9

    @classmethod
    def from_env(cls) -> Limits:
        env = os.environ
        return cls(
            orders_per_account=int(env.get("CERTAUTOPILOT_RENEWAL_ORDERS_PER_ACCOUNT", 300)),
            account_window=timedelta(
                seconds=float(env.get("CERTAUTOPILOT_RENEWAL_ACCOUNT_WINDOW_SECONDS", 3 * 3600))
            ),
            certs_per_domain=int(env.get("CERTAUTOPILOT_RENEWAL_CERTS_PER_DOMAIN", 50)),
            domain_window=timedelta(
                seconds=float(env.get("CERTAUTOPILOT_RENEWAL_DOMAIN_WINDOW_SECONDS", 7 * 86400))
            ),
            share=float(env.get("CERTAUTOPILOT_RENEWAL_BUDGET_SHARE", 0.9)),
        )


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_at: datetime | None = None
    reason: str | None = None


def _cap(limit: int, share: float) -> int:
    return max(1, int(limit * share))


def check(
    *,
    now: datetime,
    limits: Limits,
    account_orders: list[datetime],
    domain_orders: dict[str, list[datetime]],
) -> Verdict:
    """Whether one more order fits: ``account_orders`` are the account's recent order times,
    ``domain_orders`` the recent ones of each registered domain the certificate names.
    When it does not fit, ``retry_at`` is when the oldest counted order leaves the window."""
    recent = sorted(t for t in account_orders if t > now - limits.account_window)
    cap = _cap(limits.orders_per_account, limits.share)
    if len(recent) >= cap:
        return Verdict(
            False,
            recent[len(recent) - cap] + limits.account_window,
            f"{len(recent)} new orders on this ACME account in the last "
            f"{limits.account_window} (budget {cap})",
        )
    cap = _cap(limits.certs_per_domain, limits.share)
    for domain, times in sorted(domain_orders.items()):
        recent = sorted(t for t in times if t > now - limits.domain_window)
        if len(recent) >= cap:
            return Verdict(
                False,
                recent[len(recent) - cap] + limits.domain_window,
                f"{len(recent)} certificates for {domain} in the last "
                f"{limits.domain_window} (budget {cap})",
            )
    return Verdict(True)
