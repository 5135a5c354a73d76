"""``/readyz`` names what keeps the service from working: no worker ever ran, the only
worker stopped heartbeating (SIGKILLed, a real process), the schema is behind the code,
the database is unreachable, the KEK cannot unwrap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from certautopilot.app import create_app
from certautopilot.clock import utcnow
from certautopilot.config import Settings
from certautopilot.crypto.kek.memory import MemoryKEK
from certautopilot.db.migrate import alembic_config
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.errors import CryptoError
from certautopilot.health import service as health
from certautopilot.ops import readiness
from tests.conftest import backends, fresh_database
from tests.integration.live_server import prepared_settings


def _ready(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


@pytest.fixture(params=backends())
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own (the session's has the shared service's worker beating)."""
    with fresh_database(request.param, tmp_path, prefix="cap_ready") as url:
        yield url


def test_no_worker_ever_then_a_silent_one(own_database: str, tmp_path: Path) -> None:
    settings = prepared_settings(own_database, tmp_path)
    engine = make_engine(settings)
    try:
        with TestClient(create_app(settings)) as client:
            status, body = _ready(client)
            assert status == 503
            assert body["status"] == "not_ready" and body["failing"] == ["workers"]
            assert "no worker has ever run" in body["checks"]["workers"]["detail"]
            assert body["checks"]["database"]["ok"] and body["checks"]["kek"]["ok"]
            assert body["checks"]["migrations"]["ok"]

            # A worker seen two minutes ago: named, with its age.
            who = health.Identity("gone-1", "host-a", 4242, "certautopilot-1", utcnow())
            with transaction(make_sessionmaker(engine)) as session:
                health.beat(session, who=who, now=utcnow() - timedelta(minutes=2))
            status, body = _ready(client)
            assert status == 503
            detail = body["checks"]["workers"]["detail"]
            assert "gone-1 on host-a" in detail and "s ago" in detail

            # It beats again (the same executor id): ready.
            with transaction(make_sessionmaker(engine)) as session:
                health.beat(session, who=who, now=utcnow())
            status, body = _ready(client)
            assert status == 200 and body["failing"] == [], body
    finally:
        engine.dispose()


def test_a_killed_worker_turns_readiness_off(tmp_path: Path) -> None:
    """A real worker process beats every 0.2 s; SIGKILLed, it stops, and once its last
    beat is older than the stale window (1 s) /readyz says so."""
    env = {
        "WORKER_HEARTBEAT_SECONDS": "0.2",
        "WORKER_STALE_SECONDS": "1",
        "EXECUTOR_ID": "doomed",
    }
    settings = prepared_settings(f"sqlite:///{tmp_path / 'cap.db'}", tmp_path, **env)
    worker_env = {
        **os.environ,
        "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
        "CERTAUTOPILOT_DATABASE_URL": settings.database_url,
        **{"CERTAUTOPILOT_" + k: v for k, v in env.items()},
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "certautopilot.cli", "worker"],
        env=worker_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with TestClient(create_app(settings)) as client:
            _, body = _wait(client, 200)
            assert "doomed" in body["checks"]["workers"]["detail"]
            before = _last_seen(settings)
            _wait_until(lambda: _last_seen(settings) > before)  # it keeps beating
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            _, body = _wait(client, 503)
            assert body["failing"] == ["workers"]
            assert "doomed on" in body["checks"]["workers"]["detail"]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        log.close()


def _last_seen(settings: Settings) -> Any:
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            return health.latest(session, limit=1)[0].last_seen_at
    finally:
        engine.dispose()


def _wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _wait(client: TestClient, status: int, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        got, body = _ready(client)
        if got == status:
            return got, body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_schema_behind_the_code(tmp_path: Path) -> None:
    settings = prepared_settings(f"sqlite:///{tmp_path / 'cap.db'}", tmp_path)
    command.downgrade(alembic_config(settings), "0012")
    engine = make_engine(settings)
    try:
        found = readiness.check_migrations(engine)
    finally:
        engine.dispose()
    assert not found.ok
    have, _, needs = found.detail.partition(", the code needs ")
    (head,) = ScriptDirectory.from_config(alembic_config(settings)).get_heads()
    assert "0012" in have and head not in have
    assert head in needs
    assert "certautopilot migrate" in found.detail


def test_an_unreachable_database(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
            "CERTAUTOPILOT_DATABASE_URL": "postgresql://nobody:hunter2-secret@127.0.0.1:1/none",
        }
    )
    engine = make_engine(settings)
    try:
        found = readiness.readiness(
            engine=engine,
            sessions=make_sessionmaker(engine),
            settings=settings,
            kek=MemoryKEK(),
            now=utcnow,
        )
    finally:
        engine.dispose()
    body = found.body()
    assert body["failing"] == ["database", "migrations", "workers"]
    assert "unreachable" in body["checks"]["database"]["detail"]
    assert "hunter2-secret" not in str(body)
    assert body["checks"]["kek"]["ok"]


class _LockedKEK(MemoryKEK):
    """A KEK whose backend refuses to work (a Vault that is sealed, an HSM unplugged)."""

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        raise CryptoError("the key service is sealed")


def test_a_kek_that_cannot_wrap() -> None:
    found = readiness.check_kek(_LockedKEK())
    assert not found.ok
    assert found.detail == (
        "the KEK cannot wrap and unwrap a key (CryptoError: the key service is sealed)"
    )
    assert readiness.check_kek(MemoryKEK()).ok


def test_metrics_on_a_separate_address(tmp_path: Path) -> None:
    """``CERTAUTOPILOT_METRICS_ADDRESS``: the main port has no /metrics; the listener
    ``serve`` opens there answers (no token asked: the address is the access control)."""
    import httpx

    from certautopilot.cli.main import _serve_metrics
    from certautopilot_lab import free_port

    port = free_port()
    settings = prepared_settings(
        f"sqlite:///{tmp_path / 'cap.db'}",
        tmp_path,
        METRICS_ADDRESS=f"127.0.0.1:{port}",
        METRICS_TOKEN="unused-here",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 404
    stop = _serve_metrics(settings)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        stop()
    assert "certautopilot_renewal_backlog 0.0" in text
    assert "certautopilot_workflows_waiting" in text


def test_heartbeats_upsert_and_list_the_stale(own_database: str, tmp_path: Path) -> None:
    """One row per executor id, rewritten by each beat (a restart moves ``started_at``),
    a beat clears a recovery claim; ``stale`` lists the silent ones not yet recovered
    (what the dead-worker recovery of issue 13 will read)."""
    from certautopilot.health.models import WorkerHeartbeat

    settings = prepared_settings(own_database, tmp_path)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    try:
        first = health.Identity("w-1", "h", 1, "v1", now - timedelta(hours=1))
        later = health.Identity("w-1", "h", 2, "v2", now)
        silent = health.Identity("w-2", "h", 3, "v1", now - timedelta(hours=1))
        with transaction(sessions) as session:
            health.beat(session, who=first, now=now - timedelta(minutes=5))
            health.beat(session, who=silent, now=now - timedelta(minutes=5))
        with transaction(sessions) as session:
            row = session.get(WorkerHeartbeat, "w-2")
            assert row is not None
            row.recovered_by, row.recovered_at = "w-1", now
        with transaction(sessions) as session:
            health.beat(session, who=later, now=now)
        with sessions() as session:
            rows = {r.executor_id: r for r in health.latest(session)}
            assert (rows["w-1"].pid, rows["w-1"].app_version) == (2, "v2")
            assert rows["w-1"].started_at == later.started_at
            window = timedelta(seconds=30)
            assert [r.executor_id for r in health.fresh(session, now=now, stale_after=window)] == [
                "w-1"
            ]
            assert health.stale(session, now=now, stale_after=window) == []  # w-2 is claimed
        with transaction(sessions) as session:  # w-2 comes back, then falls silent again
            health.beat(session, who=silent, now=now - timedelta(minutes=1))
        with sessions() as session:
            found = health.stale(session, now=now, stale_after=timedelta(seconds=30))
            assert [r.executor_id for r in found] == ["w-2"]
            assert found[0].recovered_by is None
    finally:
        engine.dispose()
