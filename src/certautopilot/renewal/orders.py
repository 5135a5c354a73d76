"""Every new ACME order, counted once, and the rate-limit budget read from the count.

Who writes the log (``renewal_order_log``, one row per order and registered domain):

* the API, in the transaction that creates a version to be ordered at once (a first
  issuance, a renewal by hand), and the scheduler in the one that starts a renewal - so
  many requests in a row see each other's orders before any reaches the CA;
* the issuance step, in the transaction that stores the order URL it got from the CA -
  for orders nobody counted yet (a request that waited for approval).

:func:`record_order` is idempotent per certificate version (steps are at-least-once, and
the step finds the API's row): an existence check, backed by a unique index.

:func:`verdict` counts, at ``now``, the account's orders, those of each registered domain
the names fall under and those for the exact same names (both at the same CA), then asks
:func:`budget.check`. :func:`require_budget` is the check of a person's request: it raises
:class:`RateLimited` (HTTP 429) instead of sending the CA an order it would refuse.
The limits are the issuer's (``issuer_limits``: a preset, numbers, or the service settings
when it names none); an ARI renewal the CA exempts is not checked, but still counted (the
safe side: a CA that stopped exempting finds the count right).

Check and count happen in the caller's transaction. :func:`verdict` first takes a lock
held until the caller commits, so concurrent requests and workers check one after the
other and each sees the orders the previous one counted: on PostgreSQL a transaction-scoped
advisory lock on the ACME account; on SQLite the database's write lock (``sqlite_writes``;
one writer at a time anyway), taken by a write that changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.orm import Session

from certautopilot.errors import RateLimited
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.renewal import budget, issuer_limits
from certautopilot.renewal.models import OrderLog


def ca_key(issuer: Issuer) -> str:
    """Which CA an issuer orders from (its directory URL, hashed to a fixed width)."""
    return hashlib.sha256(str(issuer.config.get("directory_url", "")).encode()).hexdigest()


def domains_of(names: Sequence[str]) -> list[str]:
    return sorted({budget.registered_domain(n) for n in names})


def record_order(
    session: Session,
    *,
    issuer: Issuer,
    certificate_id: str,
    names: Sequence[str],
    version_id: str,
    at: datetime,
) -> bool:
    """Counts the order of ``version_id`` (no-op for a non-ACME issuer or when it is
    counted already). True when this call wrote it."""
    if not issuers.has(issuer, issuer_port.ORDER_RATE_LIMITS):
        return False
    if session.scalar(select(OrderLog.id).where(OrderLog.version_id == version_id).limit(1)):
        return False
    key, ca = budget.names_key(names), ca_key(issuer)
    for domain in domains_of(names):
        session.add(
            OrderLog(
                issuer_id=issuer.id,
                registered_domain=domain,
                certificate_id=certificate_id,
                version_id=version_id,
                names_key=key,
                ca_key=ca,
                at=at,
            )
        )
    session.flush()
    return True


def _lock_account(session: Session, issuer_id: str) -> None:
    """Serializes budget checks of one ACME account until the caller commits."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # An UPDATE takes SQLite's write lock even when it matches no row; the reads
        # after it see every order committed before.
        session.execute(text("UPDATE renewal_order_log SET id = id WHERE 0 = 1"))
        return
    if dialect != "postgresql":
        return
    digest = hashlib.sha256(f"order-budget:{issuer_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)  # a bigint
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def verdict(
    session: Session,
    *,
    issuer: Issuer,
    names: Sequence[str],
    now: datetime,
    limits: budget.Limits,
    share: float | None = None,
    ari_renewal: bool = False,
) -> budget.Verdict:
    """Whether one more order for ``names`` on ``issuer`` fits the budget at ``now``.

    ``limits`` are the service settings; the issuer's own (``issuer_limits``) replace them
    when it names any. No limits, or an ARI renewal (``ari_renewal``: the order will carry
    ``replaces``) the issuer's CA exempts: always allowed.

    Reads at most the newest ``cap`` orders of each limit (all :func:`budget.check` needs:
    the cap-th newest says when the limit frees up), through the log's indexes, so a long
    log costs no more than a short one."""
    found = issuer_limits.resolve(issuer.config.get("rate_limits"), default=limits)
    if found.limits is None or not found.applies(ari_renewal=ari_renewal):
        return budget.Verdict(True)
    limits = found.limits
    _lock_account(session, issuer.id)
    share = limits.share if share is None else share
    domains = domains_of(names)
    if not domains:  # no names: nothing the CA would count (the order itself is refused)
        return budget.Verdict(True)
    key, ca = budget.names_key(names), ca_key(issuer)
    same_ca = or_(OrderLog.ca_key == ca, OrderLog.ca_key.is_(None))

    def newest(where: ColumnElement[bool], limit: int) -> list[datetime]:
        stmt = select(OrderLog.at).where(where).order_by(OrderLog.at.desc())
        return list(session.scalars(stmt.limit(budget.cap(limit, share))))

    # An order has one row per registered domain: one per order on the account...
    last = func.max(OrderLog.at)
    account = list(
        session.scalars(
            select(last)
            .where(OrderLog.issuer_id == issuer.id, OrderLog.at > now - limits.account_window)
            .group_by(func.coalesce(OrderLog.version_id, OrderLog.id))
            .order_by(last.desc())
            .limit(budget.cap(limits.orders_per_account, share))
        )
    )
    per_domain = {
        d: newest(
            (OrderLog.registered_domain == d)
            & same_ca
            & (OrderLog.at > now - limits.domain_window),
            limits.certs_per_domain,
        )
        for d in domains
    }
    # ... and, for the same names, one row per order in their first registered domain.
    duplicates = newest(
        (OrderLog.names_key == key)
        & (OrderLog.registered_domain == domains[0])
        & same_ca
        & (OrderLog.at > now - limits.duplicate_window),
        limits.duplicate_certs,
    )
    return budget.check(
        now=now,
        limits=limits,
        account_orders=account,
        domain_orders=per_domain,
        duplicate_orders=duplicates,
        share=share,
    )


def require_budget(
    session: Session,
    *,
    issuer: Issuer,
    names: Sequence[str],
    now: datetime,
    limits: budget.Limits,
    ari_renewal: bool = False,
) -> None:
    """A person's request may use the whole of each limit; over it: :class:`RateLimited`
    naming the limit and when it frees up. Not ACME: nothing to check."""
    if not issuers.has(issuer, issuer_port.ORDER_RATE_LIMITS):
        return
    found = verdict(
        session,
        issuer=issuer,
        names=names,
        now=now,
        limits=limits,
        share=1.0,
        ari_renewal=ari_renewal,
    )
    if found.allowed:
        return
    retry_at = found.retry_at or now
    raise RateLimited(
        f"{found.reason}; the CA would refuse this order. Try again after {retry_at.isoformat()}.",
        found.limit or "",
        retry_at.isoformat(),
        max(1.0, (retry_at - now).total_seconds()),
    )
