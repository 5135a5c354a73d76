"""Engines and sessions. SQLite gets WAL, a busy timeout, foreign keys and serialized writers.

PostgreSQL gets a bounded pool per process (``CERTAUTOPILOT_DB_POOL_SIZE`` +
``CERTAUTOPILOT_DB_MAX_OVERFLOW``; the README's "Database connections" adds them up so eight
workers fit under PostgreSQL's default ``max_connections``), and each connection names its
process (``application_name``), so ``pg_stat_activity`` shows who holds what. Behind
PgBouncer in transaction pooling (``CERTAUTOPILOT_DB_PGBOUNCER``) psycopg prepares no
statements: consecutive transactions may run on different server connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.config import Settings
from certautopilot.db.sqlite_writes import SerializedConnection


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url,
            # One writer at a time, handed over at once (see sqlite_writes).
            connect_args={
                "timeout": settings.sqlite_busy_timeout,  # SQLite's busy timeout too
                "check_same_thread": False,
                "factory": SerializedConnection,
            },
            pool_size=20,
            max_overflow=20,
            hide_parameters=True,  # statement errors in a log never show the values
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        postgres_url(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={"prepare_threshold": None} if settings.db_pgbouncer else {},
        hide_parameters=True,  # statement errors in a log never show the values
    )


def postgres_url(settings: Settings) -> str:
    """The database URL with an ``application_name`` naming this process, unless it names
    one already (DBOS's own connections use this URL too)."""
    url = make_url(settings.database_url)
    if "application_name" not in url.query:
        name = f"certautopilot {settings.executor_id}"[:63]  # PostgreSQL keeps 63 bytes
        url = url.update_query_dict({"application_name": name})
    return url.render_as_string(hide_password=False)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The caller's unit of work: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session


def system_database_url(settings: Settings) -> str:
    """The URL DBOS is given for its system tables (it picks its own driver)."""
    url = settings.database_url if settings.is_sqlite else postgres_url(settings)
    return url.replace("+psycopg", "")
