"""``/readyz``: the checks a load balancer or an orchestrator asks before sending traffic.

Each check answers ok or names what is wrong, in words an operator can act on: the
database is unreachable, the schema is behind the code (run ``certautopilot migrate``), no
worker has written a heartbeat lately (start one: ``certautopilot worker``), the KEK cannot
wrap and unwrap a key. A check never raises and never shows a secret: an exception becomes
its class name and the first line of its message.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.migrate import MIGRATIONS
from certautopilot.health import service as health

KEK_PROBE_AAD = b"certautopilot:readyz"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def body(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "failing": [c.name for c in self.checks if not c.ok],
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def _said(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def code_heads() -> frozenset[str]:
    """The migration heads this code ships (read once per process: the files do not move)."""
    return _heads_of(str(MIGRATIONS))


@cache
def _heads_of(script_location: str) -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", script_location)
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", False, f"the database is unreachable ({_said(exc)})")
    return Check("database", True, "reachable")


def check_migrations(engine: Engine) -> Check:
    try:
        with engine.connect() as conn:
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:
        return Check("migrations", False, f"cannot read the schema version ({_said(exc)})")
    wanted = code_heads()
    if current != wanted:
        have = ", ".join(sorted(current)) or "none"
        return Check(
            "migrations",
            False,
            f"the database schema is at {have}, the code needs {', '.join(sorted(wanted))}:"
            " run `certautopilot migrate`",
        )
    return Check("migrations", True, f"at {', '.join(sorted(current))}")


def check_workers(sessions: sessionmaker[Session], settings: Settings, now: datetime) -> Check:
    stale_after = timedelta(seconds=settings.worker_stale_seconds)
    try:
        with sessions() as session:
            alive = health.fresh(session, now=now, stale_after=stale_after)
            last = [] if alive else health.latest(session, limit=1)
    except Exception as exc:
        return Check("workers", False, f"cannot read the worker heartbeats ({_said(exc)})")
    if alive:
        names = ", ".join(w.executor_id for w in alive[:10])
        return Check("workers", True, f"{len(alive)} alive: {names}")
    window = f"{settings.worker_stale_seconds:g} s"
    if not last:
        return Check("workers", False, "no worker has ever run (start one: `certautopilot worker`)")
    seen = last[0]
    age = (now - seen.last_seen_at).total_seconds()
    return Check(
        "workers",
        False,
        f"no worker heartbeat in the last {window}; the latest, {seen.executor_id} on"
        f" {seen.hostname}, was {age:.0f} s ago",
    )


def check_kek(kek: KeyEncryptionKey) -> Check:
    probe = secrets.token_bytes(32)
    try:
        wrapped = kek.wrap(probe, KEK_PROBE_AAD)
        ok = kek.unwrap(kek.key_id, wrapped, KEK_PROBE_AAD) == probe
    except Exception as exc:
        return Check("kek", False, f"the KEK cannot wrap and unwrap a key ({_said(exc)})")
    if not ok:
        return Check("kek", False, "the KEK unwrapped a key to other bytes")
    return Check("kek", True, f"key {kek.key_id} wraps and unwraps")


def readiness(
    *,
    engine: Engine,
    sessions: sessionmaker[Session],
    settings: Settings,
    kek: KeyEncryptionKey,
    now: Callable[[], datetime],
) -> Readiness:
    database = check_database(engine)
    if not database.ok:
        skipped = "not checked: the database is unreachable"
        return Readiness(
            (
                database,
                Check("migrations", False, skipped),
                Check("workers", False, skipped),
                check_kek(kek),
            )
        )
    return Readiness(
        (
            database,
            check_migrations(engine),
            check_workers(sessions, settings, now()),
            check_kek(kek),
        )
    )
