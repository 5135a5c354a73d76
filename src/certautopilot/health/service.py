"""Writing and reading worker heartbeats. The caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from certautopilot.health.models import WorkerHeartbeat


@dataclass(frozen=True)
class Identity:
    """Who beats: the process behind an executor id."""

    executor_id: str
    hostname: str
    pid: int
    app_version: str
    started_at: datetime


def beat(session: Session, *, who: Identity, now: datetime) -> None:
    """Upserts ``who``'s row with ``last_seen_at = now`` (one statement: two processes that
    start under the same executor id at once cannot trip over a duplicate key). A beat
    clears a recovery claim: the executor is back."""
    values = {
        "executor_id": who.executor_id,
        "hostname": who.hostname[:253],
        "pid": who.pid,
        "app_version": who.app_version[:64],
        "started_at": who.started_at,
        "last_seen_at": now,
        "recovered_by": None,
        "recovered_at": None,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(WorkerHeartbeat).values(**values)
    update = {k: v for k, v in values.items() if k != "executor_id"}
    session.execute(stmt.on_conflict_do_update(index_elements=["executor_id"], set_=update))


def fresh(session: Session, *, now: datetime, stale_after: timedelta) -> list[WorkerHeartbeat]:
    """The workers seen within ``stale_after`` of ``now``, most recent first."""
    stmt = (
        select(WorkerHeartbeat)
        .where(WorkerHeartbeat.last_seen_at >= now - stale_after)
        .order_by(WorkerHeartbeat.last_seen_at.desc())
    )
    return list(session.scalars(stmt))


def stale(session: Session, *, now: datetime, stale_after: timedelta) -> list[WorkerHeartbeat]:
    """The workers not seen within ``stale_after`` and not yet recovered by another: the
    candidates of the dead-worker recovery (issue 13)."""
    stmt = (
        select(WorkerHeartbeat)
        .where(
            WorkerHeartbeat.last_seen_at < now - stale_after,
            WorkerHeartbeat.recovered_by.is_(None),
        )
        .order_by(WorkerHeartbeat.last_seen_at)
    )
    return list(session.scalars(stmt))


def latest(session: Session, *, limit: int = 10) -> list[WorkerHeartbeat]:
    """The most recently seen workers (what ``/readyz`` names when none is fresh)."""
    stmt = select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen_at.desc()).limit(limit)
    return list(session.scalars(stmt))


def seen_since(session: Session, *, since: datetime) -> list[WorkerHeartbeat]:
    """The workers seen after ``since`` (the metrics gauge: long-gone executors drop out,
    so the series stay bounded however many workers came and went)."""
    stmt = select(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at >= since)
    return list(session.scalars(stmt.order_by(WorkerHeartbeat.executor_id)))


def claim(
    session: Session, *, executor_id: str, by: str, now: datetime, stale_after: timedelta
) -> bool:
    """Claims the recovery of ``executor_id``'s workflows for ``by``: one compare-and-set, so
    of several live workers sweeping at once exactly one wins. The row must still be stale
    (a beat since the candidates were read means the worker is back) and unclaimed, or
    claimed longer than ``stale_after`` ago (the claimer died before it finished: recovery
    is idempotent, so another may do it again)."""
    taken = session.execute(
        update(WorkerHeartbeat)
        .where(
            WorkerHeartbeat.executor_id == executor_id,
            WorkerHeartbeat.executor_id != by,
            WorkerHeartbeat.last_seen_at < now - stale_after,
            or_(
                WorkerHeartbeat.recovered_by.is_(None),
                WorkerHeartbeat.recovered_at < now - stale_after,
            ),
        )
        .values(recovered_by=by, recovered_at=now)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1  # type: ignore[attr-defined, no-any-return]
