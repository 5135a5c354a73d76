"""Which step failures a retry can heal, and the steps that retry them.

Why: PostgreSQL restarts (an upgrade, a failover, a crash) while certificates are being
issued. DBOS itself waits for its database to come back; a step of ours whose transaction
meets the restart fails with the driver's connection error, and without a retry the
certificate would fail for a reason that was gone a second later. Each step's transaction
is all or nothing and every step is safe to run again (``acme.begin`` reuses the stored
order, ``acme.complete`` a finalized order, ``cert.fail`` and the approval and AD CS checks
look before they write), so running it again is the cure. The renewal tick's steps are not
``db_step`` yet: two workers reconciling one failure could notify twice after a retry, until
ticks cannot overlap.

How: ``database_unavailable`` recognises a lost or refused connection (SQLAlchemy's
``OperationalError``/``InterfaceError``, or any DBAPI error that invalidated its connection;
on SQLite also "database is locked" past the busy timeout). ``db_step`` is ``DBOS.step`` with
retries on exactly that: 6 attempts, 1, 2, 4, 8 and 16 s apart (31 s of waiting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from dbos import DBOS
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

P = ParamSpec("P")
R = TypeVar("R")

ATTEMPTS = 6
FIRST_INTERVAL_SECONDS = 1.0
BACKOFF_RATE = 2.0


def database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # PoolTimeout: every connection of this process's pool stayed busy (the budget is full)
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


def db_step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A step DBOS runs again while its database connection fails."""
    return DBOS.step(
        name=name,
        retries_allowed=True,
        max_attempts=ATTEMPTS,
        interval_seconds=FIRST_INTERVAL_SECONDS,
        backoff_rate=BACKOFF_RATE,
        should_retry=database_unavailable,
    )
