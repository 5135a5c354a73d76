"""Engines and sessions. SQLite gets WAL, a busy timeout, foreign keys and serialized writers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
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
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(settings.database_url, pool_size=20, max_overflow=10, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The caller's unit of work: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session
