"""High availability on PostgreSQL: three workers, one SIGKILLed in the middle of a batch of
100 certificates and never started again. Its pending workflows are taken over by a live
worker once its heartbeat is older than ``CERTAUTOPILOT_WORKER_STALE_SECONDS``: all 100
certificates are issued, each with one version, and the dead worker's heartbeat row names
the worker that took over.

Orders, seen by a proxy in front of Pebble: no certificate gets a new order once its order
URL is stored (a recovered workflow continues the stored order). The one window that can
cost a second order is a kill after the CA created an order and before its URL was stored;
an order lost that way is never used, and there are at most as many as the dead worker had
workflows in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dbos import DBOSClient
from sqlalchemy import select

from certautopilot.certificates.models import CertificateVersion
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.health.models import WorkerHeartbeat
from certautopilot.workflows.launcher import APP_NAME
from certautopilot_lab.info import LabInfo
from certautopilot_lab.tls import tls_files
from tests.conftest import Service, _make_service, backends, fresh_database
from tests.integration.acme_limit_proxy import LimitProxy

pytestmark = [pytest.mark.lab, pytest.mark.serial]

COUNT = 100
FLEET_ENV = {
    "CERTAUTOPILOT_WORKER_HEARTBEAT_SECONDS": "1",
    # Well above the longest a loaded test machine has left a live worker's heartbeat
    # thread waiting (4 s was seen to take over a live worker: its orders then ran twice).
    "CERTAUTOPILOT_WORKER_STALE_SECONDS": "15",
    "CERTAUTOPILOT_ISSUANCE_CONCURRENCY": "8",
}


@dataclass
class Fleet:
    service: Service
    workers: dict[str, subprocess.Popen[bytes]]

    def start(self) -> None:
        """Start the three workers (the batch is queued first, see the test)."""
        for n in (1, 2, 3):
            executor = f"ha-{n}-{os.getpid()}"
            log = open(self.service.log_dir / f"failover-worker-{n}.log", "wb")  # noqa: SIM115
            self.workers[executor] = subprocess.Popen(
                [sys.executable, "-m", "certautopilot.cli", "worker"],
                env={**self.service.env, **FLEET_ENV, "CERTAUTOPILOT_EXECUTOR_ID": executor},
                stdout=log,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture(params=[b for b in backends() if b == "postgresql"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    """A service of its own on a fresh PostgreSQL database, with three workers instead of one."""
    with fresh_database(request.param, tmp_path, prefix="cap_failover") as url:
        made = _make_service(url, tmp_path / "data")
        service = next(made)
        service.stop_worker()
        fleet = Fleet(service, {})
        try:
            yield fleet
        finally:
            for proc in fleet.workers.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in fleet.workers.values():
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            made.close()


def _pending(service: Service, executor: str) -> int:
    engine = make_engine(service.settings)
    client = DBOSClient(system_database_engine=engine, application_name=APP_NAME)
    try:
        return len(client.list_workflows(executor_id=executor, status="PENDING", limit=500))
    finally:
        client.destroy()
        engine.dispose()


def _statuses(service: Service, slug: str) -> list[str]:
    page = service.ok("GET", f"/projects/{slug}/certificates?limit={COUNT}")
    return [item["status"] for item in page["items"]]


def test_a_dead_workers_certificates_are_issued_once_by_the_others(
    fleet: Fleet, lab: LabInfo
) -> None:
    service = fleet.service
    files = tls_files(lab.ca_bundle_path.parent)
    proxy = LimitProxy(lab.acme_port, files.leaf_cert, files.leaf_key)
    try:
        slug = "failover"
        service.ok("POST", "/projects", 201, json={"slug": slug, "name": "Failover"})
        issuer = service.ok(
            "POST",
            f"/projects/{slug}/issuers",
            201,
            json={
                "name": "pebble-counted",
                "kind": "acme",
                "acme": {
                    "directory_url": proxy.directory_url,
                    "contact_email": "ops@example.test",
                    "terms_agreed": True,
                    "ca_bundle_pem": lab.ca_bundle_path.read_text(),
                },
            },
        )["id"]
        service.ok(
            "POST",
            f"/projects/{slug}/zones",
            201,
            json={
                "name": "example.test",
                "provider": "rfc2136",
                "nameservers": [f"127.0.0.1:{lab.dns_port}"],
                "propagation_timeout_seconds": 30,
                "rfc2136": {
                    "server": "127.0.0.1",
                    "port": lab.dns_port,
                    "tsig_name": lab.tsig_name,
                    "tsig_algorithm": lab.tsig_algorithm,
                    "tsig_secret": lab.tsig_secret,
                },
            },
        )
        ids = [
            service.ok(
                "POST",
                f"/projects/{slug}/certificates",
                202,
                json={"issuer": issuer, "common_name": f"ha-{i:03d}.example.test"},
            )["id"]
            for i in range(COUNT)
        ]
        # The whole batch is queued before any worker runs: each worker then holds its full
        # share from the start. Started while the batch was still being queued, on an idle
        # machine the workers issued each certificate as fast as it came, and no worker ever
        # held three at once (CI, stop 25).
        fleet.start()

        # The victim: the first worker, once it holds workflows in the middle of their steps
        # and some certificates are already issued.
        victim, proc = next(iter(fleet.workers.items()))
        deadline = time.monotonic() + 180
        while not (
            _pending(service, victim) >= 3 and _statuses(service, slug).count("issued") >= 5
        ):
            assert proc.poll() is None, f"worker {victim} exited; see {service.log_dir}"
            assert time.monotonic() < deadline, (
                "the first worker never held three workflows once five certificates were issued: "
                f"pending {[(w, _pending(service, w)) for w in fleet.workers]}, "
                f"issued {_statuses(service, slug).count('issued')}; see {service.log_dir}"
            )
            time.sleep(0.2)
        stranded = _pending(service, victim)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _statuses(service, slug).count("issued") < COUNT  # killed mid-batch

        deadline = time.monotonic() + 420
        while True:
            statuses = _statuses(service, slug)
            if all(s in ("issued", "failed") for s in statuses):
                break
            assert time.monotonic() < deadline, f"not all issued: {sorted(set(statuses))}"
            time.sleep(1)
        assert statuses == ["issued"] * COUNT
        for cert_id in ids:  # none twice: one version each
            versions = service.ok("GET", f"/projects/{slug}/certificates/{cert_id}/versions")
            assert len(versions) == 1, versions
        assert _pending(service, victim) == 0

        engine = make_engine(service.settings)
        try:
            with transaction(make_sessionmaker(engine)) as session:
                stored = set(
                    session.scalars(
                        select(CertificateVersion.order_url).where(
                            CertificateVersion.certificate_id.in_(ids)
                        )
                    )
                )
                created = [url for url, _ in proxy.created]
                assert len(stored) == COUNT and stored <= set(created)
                for url in stored:  # no order for these names after the stored one
                    names = dict(proxy.created)[url]
                    later = created[created.index(url) + 1 :]
                    assert not [u for u in later if dict(proxy.created)[u] == names], names
                lost = set(created) - stored
                assert len(lost) <= stranded, (len(lost), stranded)
                row = session.scalar(
                    select(WorkerHeartbeat).where(WorkerHeartbeat.executor_id == victim)
                )
                assert row is not None and row.recovered_by in fleet.workers
                assert row.recovered_by != victim
        finally:
            engine.dispose()
        logs = "".join(
            p.read_text(errors="replace") for p in service.log_dir.glob("failover-worker-*.log")
        )
        assert f"of worker {victim}" in logs  # the survivor said what it did
    finally:
        proxy.close()
