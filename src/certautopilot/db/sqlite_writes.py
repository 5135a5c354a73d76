"""One writer at a time on an SQLite file, handed over without SQLite's busy sleeps.

SQLite allows one write transaction at a time. A connection that finds the write lock taken
sleeps in SQLite's busy handler (1, 2, 5, ... up to 100 ms between tries) and retries; with
the API and two workers, each with many threads, the lock is free most of the time while
the waiters sleep, and the newest waiter, whose sleeps are shortest, tends to win. Under a
batch of issuances that made POSTs wait seconds, and one waited past the busy timeout and
failed ("database is locked").

Here every writer first takes a lock of its own: a ``threading.Lock`` per process (so
threads queue in the process, bounded by the busy timeout) and then an ``flock`` on
``<database>.writelock`` (so processes queue in the kernel, which wakes the next one the
moment the holder lets go). The lock is taken when a connection is about to write — its
first INSERT, UPDATE, DELETE, REPLACE, DDL or ``BEGIN IMMEDIATE`` — and let go when its
transaction ends (commit, rollback, an autocommitted statement, close). pysqlite begins a
transaction only before such a statement, so a transaction's snapshot starts under the lock
and never goes stale. Every connection of the engine writes this way, DBOS's included (it
uses our engine as its system database). A process that dies holding the ``flock`` loses
it with its file descriptors.

A thread gives up after the busy timeout (``sqlite3.OperationalError: database is locked``,
which the API answers with 503 and ``Retry-After``); the one thread per process that waits
on the ``flock`` waits as long as the other process's transaction lasts, which is short by
rule (no network I/O or key generation inside a transaction).
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

_WRITE = re.compile(
    r"^\s*(?:INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|BEGIN\s+(?:IMMEDIATE|EXCLUSIVE))\b",
    re.IGNORECASE,
)
_CTE_WRITE = re.compile(r"^\s*WITH\b.*\b(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE | re.S)


def is_write(sql: str) -> bool:
    """True for a statement that takes SQLite's write lock."""
    return bool(_WRITE.match(sql) or _CTE_WRITE.match(sql))


class WriteLock:
    """The write lock of one database file, for every connection of this process."""

    def __init__(self, path: str) -> None:
        self.path = path + ".writelock"
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def acquire(self, timeout: float) -> None:
        if not self._threads.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


_locks: dict[str, WriteLock] = {}
_locks_guard = threading.Lock()


def write_lock(path: str) -> WriteLock:
    key = os.path.realpath(path)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = WriteLock(key)
        return lock


class SerializedCursor(sqlite3.Cursor):
    connection: SerializedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> SerializedCursor:
        with self.connection.writing(sql):
            super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> SerializedCursor:
        with self.connection.writing(sql):
            super().executemany(sql, seq_of_parameters)
        return self


class SerializedConnection(sqlite3.Connection):
    """A pysqlite connection that takes the file's :class:`WriteLock` before it writes."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._timeout = float(kwargs.get("timeout", 5.0))
        self._lock = write_lock(database) if database != ":memory:" else None
        self._holding = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or SerializedCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def writing(self, sql: str) -> _Writing:
        return _Writing(self, sql)

    def _take(self) -> None:
        if self._lock is not None and not self._holding:
            self._lock.acquire(self._timeout)
            self._holding = True

    def _let_go(self) -> None:
        if self._holding and not self.in_transaction:
            self._holding = False
            assert self._lock is not None
            self._lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding:
                self._holding = False
                assert self._lock is not None
                self._lock.release()


class _Writing:
    """Around one statement: take the lock before a write, let go once no transaction is open."""

    __slots__ = ("_conn", "_sql")

    def __init__(self, conn: SerializedConnection, sql: str) -> None:
        self._conn, self._sql = conn, sql

    def __enter__(self) -> None:
        if not self._conn._holding and is_write(self._sql):
            self._conn._take()

    def __exit__(self, *exc: object) -> None:
        self._conn._let_go()
