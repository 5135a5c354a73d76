"""PostgreSQL restarted in the middle of a batch of issuances: the worker's steps wait for
it, every certificate is issued once (one order, one version), and the API, asked while the
server is away, answers 503 (never a 500). The server restarted is a PostgreSQL cluster of
this test's own, so no other test loses its database."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certautopilot_lab import free_port
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, _make_service, create_project

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
BATCH = 6


class Cluster:
    """A throw-away PostgreSQL cluster run by the ``postgres`` user in a temporary folder."""

    def __init__(self) -> None:
        assert PG_BIN is not None, "PostgreSQL's server binaries are not installed"
        # Not under pytest's temporary folder: the server runs as ``postgres`` (initdb
        # refuses root), which may not enter root's private folders.
        self.root = Path(tempfile.mkdtemp(prefix="cap-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port(udp=False)
        if _is_root():
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.pg_ctl("start")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.pg_ctl("stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(PG_BIN / program), *args]
        if _is_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        # The server started by pg_ctl keeps no pipe of ours open: its output goes to a log.
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120
        )

    def pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-w", "-m", "fast", "-o", options, action
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def _is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    pg = Cluster()
    try:
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def own_service(cluster: Cluster, tmp_path: Path) -> Iterator[Service]:
    made = _make_service(cluster.url, tmp_path / "data")
    yield next(made)
    next(made, None)


def _poll(service: Service, path: str) -> dict[str, Any] | None:
    """The body of a GET, or None while the database is away (503, never anything else)."""
    response = service.call("GET", path)
    if response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_postgresql_restart_mid_batch(own_service: Service, cluster: Cluster, lab: LabInfo) -> None:
    service = own_service
    project = create_project(service, lab, manual_zone=False)
    slug = project.slug
    stem = uuid.uuid4().hex[:6]
    ids = [
        service.ok(
            "POST",
            f"/projects/{slug}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": f"pg{i}-{stem}.example.test"},
        )["id"]
        for i in range(BATCH)
    ]
    # Mid-batch: the first orders are placed, not every certificate is issued yet.
    deadline = time.monotonic() + 60
    while True:
        statuses = [service.ok("GET", f"/projects/{slug}/certificates/{i}")["status"] for i in ids]
        orders = sum(
            any(e["type"] == "acme.order.created" for e in service.timeline(slug, i)["events"])
            for i in ids
        )
        if orders >= 1:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.05)
    assert statuses.count("issued") < BATCH, "the batch finished before the restart"
    cluster.pg_ctl("restart")

    deadline = time.monotonic() + 180
    pending = set(ids)
    while pending:
        for cert_id in sorted(pending):
            body = _poll(service, f"/projects/{slug}/certificates/{cert_id}")
            if body is not None and body["status"] in ("issued", "failed"):
                assert body["status"] == "issued", body["error"]
                pending.discard(cert_id)
        assert time.monotonic() < deadline, f"still not issued: {pending}"
        time.sleep(0.2)
    for cert_id in ids:
        types = [e["type"] for e in service.timeline(slug, cert_id)["events"]]
        assert types.count("acme.order.created") == 1, types
        assert types.count("cert.issued") == 1, types
        versions = service.ok("GET", f"/projects/{slug}/certificates/{cert_id}/versions")
        assert len(versions) == 1
