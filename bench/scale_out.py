"""Scale-out benchmark: 1, 2 and 4 workers against one PostgreSQL, certificates per CPU-second.

This machine has 2 cores, so wall time cannot grow with workers; what must hold (issue 13,
item 8) is efficiency: the workers' CPU-seconds per certificate stay within 15 % of one
worker's, and no worker runs more issuance workflows at once than its configured
concurrency. For each worker count a fresh PostgreSQL database, ``certautopilot serve
--workers N`` (API + N worker processes), N x ``--per-worker`` certificates submitted at once
through the API against the local lab (Pebble + BIND), completion seen by polling the list.
Measured: wall time, the worker processes' CPU (utime + stime from /proc) over the batch, and
the most PENDING ``issuance``-queue workflows per executor (DBOS's ``workflow_status``, read
every 50 ms). Each worker's idle cost (its CPU over 5 s with nothing to do: DBOS polling its
queues, the heartbeat) is measured before the batch; "net" takes it out, since on two cores
more workers do not shorten the batch, so their idle cost grows with the wall time.

Usage::

    .venv/bin/python bench/scale_out.py [--per-worker 40] [--workers 1,2,4] [--concurrency 16]

Prints a table and writes ``bench/out/scale_out-<timestamp>.json``. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from issue_batch import (
    OUT_DIR,
    ZONE,
    Service,
    api_ok,
    cpu_seconds,
    log,
    process_role,
    running_lab,
    set_up,
)

from certautopilot_lab.info import UNLIMITED_BUDGET_ENV, LabInfo

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
IDLE_SECONDS = 5.0


@contextmanager
def fresh_database() -> Iterator[str]:
    server = os.environ.get("CERTAUTOPILOT_TEST_DATABASE_URL") or DEFAULT_SERVER
    server = "postgresql+psycopg://" + server.removeprefix("postgresql://")
    name = f"cap_bench_out_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


class QueueSampler:
    """The most PENDING issuance workflows each executor held at once."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = sa.text("SELECT executor_id, count(*) FROM dbos.workflow_status WHERE "
                        "queue_name = 'issuance' AND status = 'PENDING' GROUP BY executor_id")
        while not self._stop.wait(0.05):
            with self.engine.connect() as conn:
                for executor, n in conn.execute(query):
                    self.peak[executor] = max(self.peak.get(executor, 0), n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()


def one_run(lab: LabInfo, workers: int, n: int, concurrency: int, tmp: Path,
            stamp: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    with fresh_database() as url:
        env = {**os.environ, **UNLIMITED_BUDGET_ENV,
               "CERTAUTOPILOT_DATA_DIR": str(tmp / f"data-{workers}"),
               "CERTAUTOPILOT_DATABASE_URL": url,
               "CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
               "CERTAUTOPILOT_LOG_LEVEL": "WARNING",
               "CERTAUTOPILOT_ISSUANCE_CONCURRENCY": str(concurrency),
               "CERTAUTOPILOT_EXECUTOR_ID": f"out-{run}"}
        service = Service(env=env, log_path=OUT_DIR / f"scale_out-{stamp}-{workers}.log",
                          workers=workers)
        service.create_token()
        service.start()
        try:
            headers = {"Authorization": f"Bearer {service.token}"}
            with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as client:
                setup = set_up(client, lab, run)
                base = f"/api/v1/projects/{setup.project}/certificates"
                api_ok(client.post(base, json={"issuer": setup.issuer,
                                               "common_name": f"warm-{run}.{ZONE}"}), 202)
                _wait(client, base, 1)
                worker_pids = [p for p in service.pids() if process_role(p) == "worker"]
                idle0 = cpu_seconds(worker_pids)
                time.sleep(IDLE_SECONDS)  # what the workers cost doing nothing
                idle = (cpu_seconds(worker_pids) - idle0) / IDLE_SECONDS / len(worker_pids)
                sampler = QueueSampler(url)
                cpu0, t0 = cpu_seconds(worker_pids), time.perf_counter()
                for i in range(n):
                    api_ok(client.post(base, json={"issuer": setup.issuer,
                                                   "common_name": f"o{i}-{run}.{ZONE}"}), 202)
                issued = _wait(client, base, n + 1)
                wall = time.perf_counter() - t0
                cpu = cpu_seconds(worker_pids) - cpu0
                sampler.stop()
        finally:
            service.stop()
    net = cpu - idle * len(worker_pids) * wall  # the batch's own work, without the idle cost
    return {"workers": workers, "certificates": issued - 1, "wall_seconds": wall,
            "net_cpu_seconds": net,
            "certs_per_net_cpu_second": (issued - 1) / net if net > 0 else None,
            "worker_cpu_seconds": cpu, "certs_per_cpu_second": (issued - 1) / cpu if cpu else None,
            "most_running_per_worker": max(sampler.peak.values(), default=0),
            "idle_cpu_per_worker": idle,
            "concurrency": concurrency}


def _wait(client: httpx.Client, base: str, n: int, timeout: float = 900) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = _count(client, base)
        failed = api_ok(client.get(base, params={"status": "failed", "limit": 1}), 200)
        if failed["items"]:
            raise SystemExit(f"a certificate failed: {failed['items'][0].get('error')}")
        if count >= n:
            return int(count)
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count} of {n} issued in {timeout:.0f} s")
        time.sleep(0.5)


def _count(client: httpx.Client, base: str) -> int:
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"status": "issued", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = api_ok(client.get(base, params=params), 200)
        total += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-worker", type=int, default=40)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="cap-scale-out-"))
    rows = []
    try:
        with running_lab(tmp / "lab") as lab:
            for workers in counts:
                log(f"{workers} worker(s): {workers * args.per_worker} certificates")
                rows.append(one_run(lab, workers, workers * args.per_worker,
                                    args.concurrency, tmp, stamp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["certs_per_cpu_second"]
    net_base = rows[0]["certs_per_net_cpu_second"]
    print(f"\nScale-out on {os.cpu_count()} CPUs, PostgreSQL, Pebble + BIND "
          f"(issuance concurrency {args.concurrency} per worker)")
    print(f"{'workers':>7} {'certs':>6} {'wall s':>7} {'worker CPU s':>12} "
          f"{'certs/CPU-s':>11} {'vs 1 worker':>11} {'most running/worker':>19} "
          f"{'idle CPU/worker':>15} {'net certs/CPU-s':>15} {'net vs 1':>8}")
    for r in rows:
        rel = r["certs_per_cpu_second"] / base if base and r["certs_per_cpu_second"] else None
        r["efficiency_vs_first"] = rel
        print(f"{r['workers']:>7} {r['certificates']:>6} {r['wall_seconds']:>7.1f} "
              f"{r['worker_cpu_seconds']:>12.1f} {r['certs_per_cpu_second']:>11.2f} "
              f"{(f'{rel:.0%}' if rel else 'n/a'):>11} "
              f"{r['most_running_per_worker']:>12} (≤ {r['concurrency']}) "
              f"{r['idle_cpu_per_worker']:>14.1%} "
              f"{r['certs_per_net_cpu_second'] or 0:>15.2f} "
              f"{(r['certs_per_net_cpu_second'] or 0) / (net_base or 1):>8.0%}")
    out = OUT_DIR / f"scale_out-{stamp}.json"
    out.write_text(json.dumps({"benchmark": "scale_out", "rows": rows}, indent=2) + "\n")
    print(f"figures: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
