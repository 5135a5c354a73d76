"""The PostgreSQL connection budget: eight workers and an API process fit under PostgreSQL's
default ``max_connections`` (100, 3 of them reserved for superusers) while they issue, each
process inside its pool (``CERTAUTOPILOT_DB_POOL_SIZE`` + ``CERTAUTOPILOT_DB_MAX_OVERFLOW``,
plus a worker's DBOS notification listener), counted in ``pg_stat_activity`` by the
``application_name`` each process gives its connections. And the same service through a
real PgBouncer 1.18 in transaction pooling (``CERTAUTOPILOT_DB_PGBOUNCER``): issuance, a
wait on a person (approval) and revocation work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from certautopilot_lab.info import LabInfo
from certautopilot_lab.ports import free_port
from tests.conftest import Service, _make_service, backends, create_project, fresh_database

pytestmark = pytest.mark.lab

POSTGRES = [b for b in backends() if b == "postgresql"]
POOL, OVERFLOW = 5, 3  # the defaults
PER_WORKER = POOL + OVERFLOW + 1  # + DBOS's notification listener
WORKERS = 8
USABLE = 100 - 3  # PostgreSQL's default max_connections minus superuser_reserved_connections


def _connections(url: str, database: str) -> Counter[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT application_name, count(*) FROM pg_stat_activity"
                    " WHERE datname = :d GROUP BY application_name"
                ),
                {"d": database},
            )
            return Counter({name: n for name, n in rows})
    finally:
        engine.dispose()


class Sampler:
    """Reads the connections per process every 50 ms and keeps each one's peak."""

    def __init__(self, url: str, database: str) -> None:
        self.url, self.database = url, database
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = _connections(self.url, self.database)
            for name, n in now.items():
                self.peak[name] = max(self.peak[name], n)
            self.peak_total = max(self.peak_total, sum(now.values()) - 1)  # not the sampler

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _start_workers(service: Service, n: int, prefix: str) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        log = open(service.log_dir / f"{prefix}-{i}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "certautopilot.cli", "worker"],
                env={
                    **service.env,
                    "CERTAUTOPILOT_EXECUTOR_ID": f"{prefix}-{i}",
                    "CERTAUTOPILOT_WORKER_HEARTBEAT_SECONDS": "1",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_heartbeats(service: Service, prefix: str, n: int) -> None:
    engine = sa.create_engine(service.settings.database_url)
    deadline = time.monotonic() + 120
    try:
        while True:
            with engine.connect() as conn:
                seen = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM worker_heartbeats WHERE executor_id LIKE :p"
                        " AND last_seen_at > now() - interval '5 seconds'"
                    ),
                    {"p": f"{prefix}-%"},
                ).scalar_one()
            if seen >= n:
                return
            assert time.monotonic() < deadline, f"only {seen} of {n} workers beat"
            time.sleep(0.5)
    finally:
        engine.dispose()


@pytest.fixture(params=POSTGRES)
def bare_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    """A service of its own on a fresh PostgreSQL database, its own worker stopped."""
    with fresh_database(request.param, tmp_path, prefix="cap_budget") as url:
        made = _make_service(url, tmp_path / "data")
        service = next(made)
        service.stop_worker()
        service.worker = None  # the workers are the test's own (wait_for watches this one)
        try:
            yield service
        finally:
            made.close()


# Nine processes that must all start and heartbeat within a deadline: alone, not beside the
# suite's other heavy tests on a two-core machine.
@pytest.mark.serial
def test_eight_workers_and_the_api_fit_under_max_connections(
    bare_service: Service, lab: LabInfo
) -> None:
    service = bare_service
    server = os.environ["CERTAUTOPILOT_TEST_DATABASE_URL"]
    database = sa.make_url(service.settings.database_url).database
    assert database
    workers = _start_workers(service, WORKERS, "budget")
    try:
        _wait_heartbeats(service, "budget", WORKERS)
        project = create_project(service, lab, manual_zone=False)
        sampler = Sampler(server, database)
        try:
            ids = [
                service.ok(
                    "POST",
                    f"/projects/{project.slug}/certificates",
                    202,
                    json={"issuer": project.issuer_id, "common_name": f"b{i}.example.test"},
                )["id"]
                for i in range(24)
            ]
            for cert_id in ids:
                assert (
                    service.wait_for(project.slug, cert_id, ("issued", "failed"))["status"]
                    == "issued"
                )
        finally:
            sampler.stop()
    finally:
        _stop(workers)
    per_worker = {k: v for k, v in sampler.peak.items() if k.startswith("certautopilot budget-")}
    assert len(per_worker) == WORKERS, sampler.peak
    assert max(per_worker.values()) <= PER_WORKER, per_worker
    assert sampler.peak_total < USABLE, (sampler.peak_total, sampler.peak)


@pytest.fixture
def pgbouncer() -> Iterator[str]:
    """A real PgBouncer in transaction pooling in front of the test PostgreSQL server; yields
    its URL without a database name."""
    server = sa.make_url(os.environ["CERTAUTOPILOT_TEST_DATABASE_URL"])
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
        f"admin_users = {server.username}\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
    )
    command = [shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(folder, "postgres")
        for f in folder.iterdir():
            shutil.chown(f, "postgres")
        command += ["-u", "postgres"]
    proc = subprocess.Popen(
        [*command, str(folder / "pgbouncer.ini")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"postgresql://{server.username}@127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()
            try:
                psycopg.connect(f"{url}/pgbouncer", autocommit=True).close()  # admin console
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "PgBouncer did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=POSTGRES)
def bounced(request: pytest.FixtureRequest, tmp_path: Path, pgbouncer: str) -> Iterator[Service]:
    """A service (API and worker) that reaches a fresh database only through PgBouncer; the
    migrations ran against PostgreSQL itself, as the README says to."""
    with fresh_database(request.param, tmp_path, prefix="cap_bounce") as direct:
        via = f"{pgbouncer}/{sa.make_url(direct).database}"
        made = _make_service(
            via, tmp_path / "data", {"CERTAUTOPILOT_DB_PGBOUNCER": "true"}, migrate_url=direct
        )
        service = next(made)
        try:
            yield service
        finally:
            made.close()


def _bouncer_transactions(pgbouncer: str, database: str) -> int:
    with psycopg.connect(f"{pgbouncer}/pgbouncer", autocommit=True) as conn:
        cursor = conn.execute("SHOW STATS")
        columns = [c.name for c in cursor.description or []]
        for row in cursor.fetchall():
            stats = dict(zip(columns, row, strict=True))
            if stats["database"] == database:
                return int(stats["total_xact_count"])
    return 0


def test_issuance_approval_and_revocation_through_pgbouncer(
    bounced: Service, pgbouncer: str, lab: LabInfo
) -> None:
    service = bounced
    database = sa.make_url(service.settings.database_url).database
    assert database and sa.make_url(service.settings.database_url).port != 5432
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    cert = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "bounced.example.test"},
    )
    assert service.wait_for(p, cert["id"], ("issued", "failed"))["status"] == "issued"

    # A workflow that waits on a person: woken by DBOS polling (no LISTEN through PgBouncer).
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    email = f"op-{p}@example.test"
    service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": "operator"})
    waiting = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        token=service.token_for(email),
        json={"issuer": project.issuer_id, "common_name": "approved.example.test"},
    )
    assert waiting["status"] == "awaiting_approval"
    request_id = waiting["approval_request"]["id"]
    service.ok("POST", f"/projects/{p}/requests/{request_id}/approve", json={})
    assert service.wait_for(p, waiting["id"], ("issued", "failed"))["status"] == "issued"

    revoked = service.ok(
        "POST", f"/projects/{p}/certificates/{cert['id']}/revoke", json={"reason": "superseded"}
    )
    assert revoked["status"] == "revoked"
    assert _bouncer_transactions(pgbouncer, database) > 100  # all of it went through PgBouncer
    worker_log = "".join(
        p.read_text(errors="replace") for p in service.log_dir.glob("worker-*.log")
    )
    assert "prepared statement" not in worker_log and "Traceback" not in worker_log
