"""Which step failures are a lost database connection (retried) and which are not."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from certautopilot.errors import DNSError
from certautopilot.workflows.retries import database_unavailable


def test_a_lost_or_refused_connection_is_retried() -> None:
    assert database_unavailable(OperationalError("SELECT 1", {}, Exception("server closed")))
    assert database_unavailable(InterfaceError("SELECT 1", {}, Exception("connection closed")))
    invalidated = DataError("SELECT 1", {}, Exception("x"), connection_invalidated=True)
    assert database_unavailable(invalidated)
    # every connection of the process's pool stayed busy (its budget is full): wait and retry
    assert database_unavailable(PoolTimeout("QueuePool limit of size 5 overflow 3 reached"))


def test_a_refused_value_or_our_own_error_is_not() -> None:
    assert not database_unavailable(IntegrityError("INSERT", {}, sqlite3.IntegrityError()))
    assert not database_unavailable(DataError("INSERT", {}, Exception("NUL")))
    assert not database_unavailable(DNSError("REFUSED"))
