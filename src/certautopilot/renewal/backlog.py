"""The renewal backlog of a project and when it should clear, per issuer (ACME account).

Why: when a CA revokes en masse (Let's Encrypt rehearses it), every certificate of an account
comes due at once. The tick starts them soonest expiry first, at most ``Config.batch`` a tick,
and the account's order budget defers the rest as a group (``renewal.deferred``, released in
order of expiry). People then need to see how many are waiting and for how long, not a
stream of events: this is that view (API ``GET …/renewals/backlog``, the inventory page).

What counts: *due* - auto-renewed certificates whose renewal time has passed and which no
renewal has taken yet; *deferred* - those the budget pushed back (``deferred_at`` set, the
renewal time moved to when an order fits again); *renewing* - renewals started and not ended.

When it clears (:func:`drain_seconds`, pure): the tick starts ``batch`` renewals per
``tick``; an account with a budget places the orders still free in its window now, then
``cap`` more each ``window``. It is an estimate that leaves out the per-domain limits and
renewals that fail and retry, and says so in the answer (``basis``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.certificates.models import Certificate
from certautopilot.config import Settings
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.renewal import budget
from certautopilot.renewal.models import OrderLog, RenewalState
from certautopilot.renewal.scheduler import RENEWABLE, Config

BASIS = (
    "the renewal tick's pace and the account's new-order budget; per-domain limits and "
    "failed attempts can make it longer"
)


@dataclass(frozen=True)
class Pace:
    """How fast the scheduler can start renewals: ``batch`` per ``tick``."""

    batch: int
    tick: timedelta


@dataclass(frozen=True)
class Budget:
    """An account's order budget for scheduled renewals: ``cap`` orders per ``window``, of
    which ``free`` are still unused now."""

    cap: int
    window: timedelta
    free: int


@dataclass(frozen=True)
class IssuerBacklog:
    issuer_id: str
    issuer_name: str
    due: int
    deferred: int
    renewing: int
    budget: Budget | None
    drain_seconds: float
    clears_at: datetime

    @property
    def waiting(self) -> int:
        return self.due + self.deferred


def drain_seconds(waiting: int, *, pace: Pace, budget: Budget | None) -> float:
    """How long until ``waiting`` renewals have all been started."""
    if waiting <= 0:
        return 0.0
    by_pace = math.ceil(waiting / pace.batch) * pace.tick.total_seconds()
    if budget is None or waiting <= budget.free:
        return by_pace
    windows = math.ceil((waiting - budget.free) / budget.cap)
    return max(by_pace, windows * budget.window.total_seconds())


def project_backlog(
    session: Session,
    *,
    project_id: str,
    now: datetime,
    pace: Pace,
    limits_for: Callable[[Issuer], budget.Limits | None],
) -> list[IssuerBacklog]:
    """Every issuer of the project with something waiting or renewing, most waiting first.
    Four grouped counts: range scans on the due index, the deferred and renewing states of
    the project's certificates, and the account's orders inside its window."""
    renewable = (
        Certificate.project_id == project_id,
        Certificate.auto_renew.is_(True),
        Certificate.csr_provided.is_(False),
        Certificate.status.in_(RENEWABLE),
        Certificate.current_version_id.is_not(None),
    )
    due = _counts(
        session,
        select(Certificate.issuer_id, func.count()).where(
            *renewable, Certificate.next_renewal_at <= now
        ),
    )
    deferred = _counts(
        session,
        select(Certificate.issuer_id, func.count())
        .join(RenewalState, RenewalState.certificate_id == Certificate.id)
        .where(
            *renewable, Certificate.next_renewal_at > now, RenewalState.deferred_at.is_not(None)
        ),
    )
    renewing = _counts(
        session,
        select(Certificate.issuer_id, func.count())
        .join(RenewalState, RenewalState.certificate_id == Certificate.id)
        .where(Certificate.project_id == project_id, RenewalState.version_id.is_not(None)),
    )
    ids = set(due) | set(deferred) | set(renewing)
    out = []
    for issuer in session.scalars(select(Issuer).where(Issuer.id.in_(ids))):
        limits = limits_for(issuer)
        account = _budget(session, issuer.id, limits, now) if limits else None
        waiting = due.get(issuer.id, 0) + deferred.get(issuer.id, 0)
        seconds = drain_seconds(waiting, pace=pace, budget=account)
        out.append(
            IssuerBacklog(
                issuer_id=issuer.id,
                issuer_name=issuer.name,
                due=due.get(issuer.id, 0),
                deferred=deferred.get(issuer.id, 0),
                renewing=renewing.get(issuer.id, 0),
                budget=account,
                drain_seconds=seconds,
                clears_at=now + timedelta(seconds=seconds),
            )
        )
    return sorted(out, key=lambda b: (-b.waiting, b.issuer_name))


def _counts(session: Session, stmt: object) -> dict[str, int]:
    rows = session.execute(stmt.group_by(Certificate.issuer_id))  # type: ignore[attr-defined]
    return {issuer_id: n for issuer_id, n in rows}


def _budget(session: Session, issuer_id: str, limits: budget.Limits, now: datetime) -> Budget:
    cap = budget.cap(limits.orders_per_account, limits.share)
    used = session.scalar(
        select(func.count(func.distinct(func.coalesce(OrderLog.version_id, OrderLog.id)))).where(
            OrderLog.issuer_id == issuer_id, OrderLog.at > now - limits.account_window
        )
    )
    return Budget(cap=cap, window=limits.account_window, free=max(0, cap - (used or 0)))


def for_project(
    session: Session, *, project_id: str, now: datetime, settings: Settings
) -> list[IssuerBacklog]:
    """:func:`project_backlog` with the service's pace and each issuer's budget: its own
    limits or preset (``renewal/issuer_limits.py``), else the service settings; none for an
    issuer that states no order limits (AD CS) or whose preset budgets nothing."""

    def limits_for(issuer: Issuer) -> budget.Limits | None:
        if not issuers.has(issuer, issuer_port.ORDER_RATE_LIMITS):
            return None
        return issuers.rate_limits(issuer, settings.rate_limits).limits  # the issuer's own

    pace = Pace(batch=Config().batch, tick=timedelta(seconds=settings.renewal_tick_seconds))
    return project_backlog(
        session, project_id=project_id, now=now, pace=pace, limits_for=limits_for
    )


def to_out(rows: list[IssuerBacklog]) -> dict[str, Any]:
    return {
        "waiting": sum(r.waiting for r in rows),
        "renewing": sum(r.renewing for r in rows),
        "clears_at": max((r.clears_at for r in rows), default=None),
        "basis": BASIS,
        "issuers": [
            {
                "issuer_id": r.issuer_id,
                "issuer": r.issuer_name,
                "due": r.due,
                "deferred": r.deferred,
                "renewing": r.renewing,
                "orders_per_window": r.budget.cap if r.budget else None,
                "window_seconds": int(r.budget.window.total_seconds()) if r.budget else None,
                "orders_free_now": r.budget.free if r.budget else None,
                "drain_seconds": int(r.drain_seconds),
                "clears_at": r.clears_at,
            }
            for r in rows
        ],
    }
