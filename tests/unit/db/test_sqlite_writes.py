"""SQLite writers queue on the file's write lock instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from certautopilot.config import Settings
from certautopilot.db.session import make_engine
from certautopilot.db.sqlite_writes import SerializedConnection, is_write


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ("INSERT INTO t VALUES (1)", True),
        ("  update t set x = 2", True),
        ("DELETE FROM t", True),
        ("REPLACE INTO t VALUES (1)", True),
        ("CREATE TABLE u (x)", True),
        ("BEGIN IMMEDIATE", True),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", True),
        ("SELECT * FROM t", False),
        ("WITH a AS (SELECT 1) SELECT * FROM a", False),
        ("PRAGMA journal_mode", False),
        ("BEGIN", False),
    ],
)
def test_which_statements_take_the_write_lock(sql: str, writes: bool) -> None:
    assert is_write(sql) is writes


def _engine(tmp_path: Path) -> sa.Engine:
    return make_engine(Settings.from_env({"CERTAUTOPILOT_DATA_DIR": str(tmp_path)}))


def test_many_threads_writing_all_commit(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (thread INTEGER, n INTEGER)"))
    errors: list[BaseException] = []

    def writer(thread: int) -> None:
        try:
            for n in range(50):
                with engine.begin() as conn:
                    # read first, then write: the classic upgrade that used to be refused
                    conn.execute(sa.text("SELECT count(*) FROM t")).scalar()
                    conn.execute(sa.text("INSERT INTO t VALUES (:t, :n)"), {"t": thread, "n": n})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 12 * 50


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    with engine.connect() as writer:
        writer.execute(sa.text("INSERT INTO t VALUES (2)"))  # holds the write lock
        started = time.monotonic()
        with engine.connect() as reader:
            assert reader.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1
        assert time.monotonic() - started < 1.0
        writer.commit()


def test_a_waiting_thread_gives_up_after_the_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    holder = sqlite3.connect(path, timeout=0.3, factory=SerializedConnection)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("INSERT INTO t VALUES (1)")  # transaction open: lock held
    waiter = sqlite3.connect(
        path, timeout=0.3, factory=SerializedConnection, check_same_thread=False
    )
    failure: list[BaseException] = []

    def write() -> None:
        try:
            waiter.execute("INSERT INTO t VALUES (2)")
        except sqlite3.OperationalError as exc:
            failure.append(exc)

    t = threading.Thread(target=write)
    t.start()
    t.join(5)
    assert failure and "locked" in str(failure[0])
    holder.commit()
    waiter.execute("INSERT INTO t VALUES (3)")  # free again once the holder committed
    waiter.commit()
    assert holder.execute("SELECT count(*) FROM t").fetchone() == (2,)


HOLD = textwrap.dedent(
    """
    import sqlite3, sys, time
    from certautopilot.db.sqlite_writes import SerializedConnection
    conn = sqlite3.connect(sys.argv[1], factory=SerializedConnection)
    conn.execute("INSERT INTO t VALUES (1)")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.commit()
    print("committed", flush=True)
    time.sleep(60)
    """
)


def _holder(path: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, path, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _table(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.close()


def test_another_process_writes_as_soon_as_the_holder_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    _table(path)
    proc = _holder(path, 0.5)
    try:
        conn = sqlite3.connect(path, timeout=10, factory=SerializedConnection)
        started = time.monotonic()
        conn.execute("INSERT INTO t VALUES (2)")
        waited = time.monotonic() - started
        conn.commit()
        assert 0.3 < waited < 5
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_lets_go(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    _table(path)
    proc = _holder(path, 60)
    conn = sqlite3.connect(path, timeout=10, factory=SerializedConnection)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn.execute("INSERT INTO t VALUES (2)")
    conn.commit()
    # the killed holder's uncommitted row is gone; ours is there
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
