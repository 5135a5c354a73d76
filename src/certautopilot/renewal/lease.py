"""One renewal tick at a time: a lease row that a tick takes, keeps and gives back.

Why: DBOS starts a tick workflow per schedule slot, so a tick that runs longer than the
interval (a million certificates, a slow CA answering ARI) overlapped the next one, and two
ticks then raced each other (one renewal attempt too many, a warning sent twice, deadlocks
on PostgreSQL). A DBOS queue with one deduplication id would serialise them, but a tick held
by a worker that died for good would then stop every later tick until that executor came
back. A lease expires instead: a dead holder stops renewing it and the next tick after
``ttl`` takes it over.

How: the tick's first step :func:`acquire` takes the row when it is free, expired or already
its own (a recovered workflow replays as the same holder); a tick that finds it held by a
live tick ends at once. Every later step of the tick calls :func:`keep` in the same
transaction as its work: it moves the expiry on, and raises :class:`LeaseLost` when another
tick has taken the lease over (this one was presumed dead), so two ticks never write at
once. :func:`release` frees it at the end. Times are the real clock (``wall``), not the
scheduler's clock that tests move: the lease is about processes being alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from certautopilot.errors import LeaseLost
from certautopilot.renewal.models import SchedulerLease

RENEWAL_TICK = "renewal-tick"
__all__ = ["RENEWAL_TICK", "Lease", "LeaseLost", "acquire", "keep", "release"]


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    ttl: timedelta


def _ensure_row(session: Session, name: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(SchedulerLease)
        .values(name=name, holder=None, expires_at=None)
        .on_conflict_do_nothing(index_elements=[SchedulerLease.name])
    )


def acquire(session: Session, lease: Lease, *, wall: datetime) -> bool:
    """Takes the lease if it is free, expired or already ``lease.holder``'s; False when
    another holder's lease is still running."""
    _ensure_row(session, lease.name)
    taken = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == lease.name,
            or_(
                SchedulerLease.holder.is_(None),
                SchedulerLease.holder == lease.holder,
                SchedulerLease.expires_at < wall,
            ),
        )
        .values(holder=lease.holder, expires_at=wall + lease.ttl, acquired_at=wall)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def keep(session: Session, lease: Lease, *, wall: datetime) -> None:
    """Moves the expiry on (in the caller's transaction); :class:`LeaseLost` if it is no
    longer ``lease.holder``'s."""
    kept = session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == lease.name, SchedulerLease.holder == lease.holder)
        .values(expires_at=wall + lease.ttl)
        .execution_options(synchronize_session=False)
    )
    if kept.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"{lease.name}: taken over from {lease.holder}")


def release(session: Session, lease: Lease) -> None:
    """Frees the lease if ``lease.holder`` still has it (a no-op otherwise)."""
    session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == lease.name, SchedulerLease.holder == lease.holder)
        .values(holder=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )
