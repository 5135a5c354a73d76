"""Batch issuance benchmark: CertAutoPilot (real ``serve`` process) against certbot.

Both tools issue P-256 certificates by DNS-01 from the same local ACME lab (Pebble + BIND 9,
started here on free ports in a temporary directory and stopped at the end).

CertAutoPilot is driven through its HTTP API exactly as a user would:

* one warm-up certificate;
* single-certificate latency on the idle service (submit -> first GET that says ``issued``,
  GET every 15 ms), several times, median reported;
* a batch of N certificates submitted with ``--concurrency`` POSTs in flight, completion seen
  by polling the list endpoint (``status=issued``, paginated) so that polling stays cheap.

certbot runs sequentially, the way its users run it (one ``certbot certonly`` per certificate,
``certbot-dns-rfc2136``, propagation wait 0, account registered beforehand).

This prints figures; it asserts nothing about time. Output: a plain-text table on stdout and
``bench/out/issue_batch-<timestamp>.json``; the service's stderr (API and worker logs) goes
to ``bench/out/issue_batch-<timestamp>-serve.log``, certbot failures to ``...-certbot.log``.

Usage::

    .venv/bin/python bench/issue_batch.py [--n 100] [--concurrency 32] [--certbot-n N]
                                          [--skip-certbot] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from certautopilot_lab import certbot as lab_certbot
from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import UNLIMITED_BUDGET_ENV, LabInfo

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
CERTBOT_VENV = BENCH_DIR / ".certbot-venv"
EMAIL = "bench@example.test"
ZONE = "example.test"
SINGLE_RUNS = 5
SINGLE_POLL_SECONDS = 0.015
LIST_POLL_SECONDS = 0.02  # least pause between list polls
LIST_POLL_DUTY = 0.2  # ...and at most this share of the time spent waiting on a list call
FAILED_POLL_EVERY = 10  # check status=failed on every 10th list poll
TERMINAL_BAD = ("failed", "rejected")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# small helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p95(values: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile (an observed value; no interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def per_minute(count: int, seconds: float | None) -> float | None:
    if not seconds or count <= 0:
        return None
    return count * 60.0 / seconds


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the given live processes (from /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine (all cores, not idle/iowait), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_role(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    words = [a.decode(errors="replace") for a in argv]
    return "worker" if "worker" in words else "serve" if "serve" in words else words[0]


def group_pids(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


# --------------------------------------------------------------------------------------
# the service as a real process


@dataclass
class Service:
    """``certautopilot serve`` in its own session (so its worker child dies with it)."""

    env: dict[str, str]
    log_path: Path
    port: int = 0
    token: str = ""
    workers: int | None = None  # serve's --workers (None: its default)
    process: subprocess.Popen[bytes] | None = None
    _log: TextIO | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def cli() -> str:
        beside = Path(sys.executable).parent / "certautopilot"
        found = str(beside) if beside.exists() else shutil.which("certautopilot")
        if not found:
            raise SystemExit("the certautopilot command is not installed in this environment")
        return found

    def create_token(self) -> None:
        result = subprocess.run(
            [self.cli(), "token", "create", "--email", EMAIL, "--instance-admin"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"token create failed ({result.returncode}): {result.stderr}")
        self.token = result.stdout.strip()
        if not self.token or "\n" in self.token:
            raise SystemExit(f"token create printed something unexpected: {result.stdout!r}")

    def start(self) -> None:
        self.port = free_port()
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [self.cli(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             *(["--workers", str(self.workers)] if self.workers is not None else [])],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"serve exited with {self.process.returncode}; "
                                 f"see {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"serve did not answer /healthz within 120 s; see {self.log_path}")

    def pids(self) -> list[int]:
        return group_pids(self.process.pid) if self.process is not None else []

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"serve ignored SIGTERM for {timeout:.0f} s; sending SIGKILL to its group")
        # The worker child may outlive serve: wait for the whole group, then kill what is left.
        deadline = time.monotonic() + timeout
        while group_pids(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_pids(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


# --------------------------------------------------------------------------------------
# CertAutoPilot through the API


@dataclass
class Setup:
    project: str
    issuer: str


def api_ok(response: httpx.Response, expect: int) -> Any:
    if response.status_code != expect:
        raise SystemExit(f"{response.request.method} {response.request.url} -> "
                         f"{response.status_code}: {response.text}")
    return response.json()


def set_up(client: httpx.Client, lab: LabInfo, run: str) -> Setup:
    slug = f"bench-{run}"
    api_ok(client.post("/api/v1/projects", json={"slug": slug, "name": f"Benchmark {run}"}), 201)
    issuer = api_ok(client.post(f"/api/v1/projects/{slug}/issuers", json={
        "name": "pebble", "kind": "acme",
        "acme": {"directory_url": lab.directory_url, "contact_email": EMAIL,
                 "terms_agreed": True, "ca_bundle_pem": lab.ca_bundle_path.read_text()},
    }), 201)
    api_ok(client.post(f"/api/v1/projects/{slug}/zones", json={
        "name": ZONE, "provider": "rfc2136", "nameservers": [f"127.0.0.1:{lab.dns_port}"],
        "rfc2136": {"server": "127.0.0.1", "port": lab.dns_port, "tsig_name": lab.tsig_name,
                    "tsig_algorithm": lab.tsig_algorithm, "tsig_secret": lab.tsig_secret},
    }), 201)
    return Setup(project=slug, issuer=str(issuer["id"]))


def issue_one(client: httpx.Client, setup: Setup, name: str,
              timeout: float = 120.0) -> tuple[float, dict[str, Any]]:
    """Submit one certificate and GET it every 15 ms; seconds to ``issued`` and the body."""
    base = f"/api/v1/projects/{setup.project}/certificates"
    started = time.perf_counter()
    body: dict[str, Any] = api_ok(
        client.post(base, json={"issuer": setup.issuer, "common_name": name}), 202)
    deadline = time.monotonic() + timeout
    while body["status"] not in ("issued", *TERMINAL_BAD) and time.monotonic() < deadline:
        time.sleep(SINGLE_POLL_SECONDS)
        body = api_ok(client.get(f"{base}/{body['id']}"), 200)
    return time.perf_counter() - started, body


def timeline(client: httpx.Client, setup: Setup, cert_id: str) -> list[tuple[str, float]]:
    """The certificate's timeline events as (type, seconds after the first event)."""
    body = api_ok(client.get(
        f"/api/v1/projects/{setup.project}/certificates/{cert_id}/timeline"), 200)
    events = [(str(e["type"]), datetime.fromisoformat(e["at"])) for e in body["events"]]
    if not events:
        return []
    first = events[0][1]
    return [(kind, (at - first).total_seconds()) for kind, at in events]


@dataclass
class BatchResult:
    n: int
    concurrency: int
    submitted: int = 0
    submit_errors: list[str] = field(default_factory=list)
    issued: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # id -> status: error
    unfinished: int = 0
    wall_seconds: float | None = None
    submit_wall_seconds: float | None = None
    latencies: list[float] = field(default_factory=list)
    post_seconds: list[float] = field(default_factory=list)
    list_polls: int = 0
    list_poll_seconds: list[float] = field(default_factory=list)
    service_cpu_seconds: float | None = None
    service_cpu_by_role: dict[str, float] = field(default_factory=dict)
    lab_cpu_seconds: float | None = None
    bench_cpu_seconds: float | None = None
    other_cpu_seconds: float | None = None  # everything else on the machine meanwhile


async def _list_all(client: httpx.AsyncClient, base: str, status: str,
                    stats: BatchResult) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"status": status, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        t0 = time.perf_counter()
        response = await client.get(base, params=params)
        stats.list_poll_seconds.append(time.perf_counter() - t0)
        stats.list_polls += 1
        body = api_ok(response, 200)
        items.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return items


async def run_batch(base_url: str, token: str, setup: Setup, n: int, concurrency: int,
                    run: str, deadline_seconds: float) -> BatchResult:
    result = BatchResult(n=n, concurrency=concurrency)
    base = f"/api/v1/projects/{setup.project}/certificates"
    pool = concurrency + 4
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    submit_at: dict[str, float] = {}  # certificate id -> perf_counter at the start of its POST
    first_issued: dict[str, float] = {}  # any id seen issued -> first observation
    bad: dict[str, str] = {}
    semaphore = asyncio.Semaphore(concurrency)
    submissions_done = asyncio.Event()
    t_first_submit = time.perf_counter()

    async with httpx.AsyncClient(base_url=base_url, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"},
                                 limits=limits) as client:

        async def submit(i: int) -> None:
            async with semaphore:
                started = time.perf_counter()
                try:
                    response = await client.post(base, json={
                        "issuer": setup.issuer, "common_name": f"b{i}-{run}.{ZONE}"})
                except httpx.HTTPError as exc:
                    result.submit_errors.append(f"b{i}: {type(exc).__name__}: {exc}")
                    return
                result.post_seconds.append(time.perf_counter() - started)
                if response.status_code != 202:
                    result.submit_errors.append(f"b{i}: {response.status_code} {response.text}")
                    return
                submit_at[response.json()["id"]] = started

        async def submit_all() -> None:
            await asyncio.gather(*(submit(i) for i in range(n)))
            result.submit_wall_seconds = time.perf_counter() - t_first_submit
            submissions_done.set()

        async def poll() -> None:
            stop_at = time.monotonic() + deadline_seconds
            polls = 0
            while time.monotonic() < stop_at:
                t_poll = time.perf_counter()
                items = await _list_all(client, base, "issued", result)
                seen = time.perf_counter()
                for item in items:
                    first_issued.setdefault(item["id"], seen)
                polls += 1
                if polls % FAILED_POLL_EVERY == 0 or submissions_done.is_set():
                    for status in TERMINAL_BAD:
                        for item in await _list_all(client, base, status, result):
                            error = item.get("error") or {}
                            bad.setdefault(item["id"], f"{status}: {error.get('title')}: "
                                                       f"{error.get('detail')}")
                if submissions_done.is_set() and all(
                        cid in first_issued or cid in bad for cid in submit_at):
                    return
                # Listing every issued certificate costs the API more as the batch grows:
                # keep the poller to a fixed share of one API thread so it cannot dominate.
                busy = time.perf_counter() - t_poll
                await asyncio.sleep(max(LIST_POLL_SECONDS, busy * (1 - LIST_POLL_DUTY)
                                        / LIST_POLL_DUTY))

        await asyncio.gather(submit_all(), poll())

    result.submitted = len(submit_at)
    done = {cid: first_issued[cid] for cid in submit_at if cid in first_issued}
    result.issued = len(done)
    result.failed = {cid: bad[cid] for cid in submit_at if cid in bad and cid not in done}
    result.unfinished = result.submitted - result.issued - len(result.failed)
    result.latencies = [done[cid] - submit_at[cid] for cid in done]
    if done:
        result.wall_seconds = max(done.values()) - t_first_submit
    return result


# --------------------------------------------------------------------------------------
# certbot


@dataclass
class CertbotResult:
    n: int
    version: str = ""
    durations: list[float] = field(default_factory=list)  # successful runs only
    failures: int = 0
    wall_seconds: float | None = None
    register_seconds: float | None = None


def ensure_certbot_venv() -> Path:
    log(f"certbot: {CERTBOT_VENV} (certbot and certbot-dns-rfc2136, installed once)")
    return lab_certbot.ensure_certbot_venv(CERTBOT_VENV)


def run_certbot(lab: LabInfo, work: Path, n: int, run: str, log_path: Path) -> CertbotResult:
    bot = lab_certbot.Certbot(lab, work, EMAIL, certbot=ensure_certbot_venv())
    result = CertbotResult(n=n)
    result.version = bot.version()
    with log_path.open("w") as failures:
        started = time.perf_counter()
        reg = bot.register()
        result.register_seconds = time.perf_counter() - started
        if reg.returncode != 0:
            failures.write(f"== certbot register -> {reg.returncode}\n{reg.stdout}\n{reg.stderr}\n")
            raise SystemExit(f"certbot register failed; see {log_path}:\n{reg.stderr[-2000:]}")
        log(f"certbot: account registered; issuing {n} certificates one after another")
        t_all = time.perf_counter()
        for i in range(n):
            name = f"c{i}-{run}.{ZONE}"
            t0 = time.perf_counter()
            proc = bot.certonly(name)
            elapsed = time.perf_counter() - t0
            if proc.returncode == 0:
                result.durations.append(elapsed)
            else:
                result.failures += 1
                failures.write(f"== {name} -> {proc.returncode} after {elapsed:.2f} s\n"
                               f"{proc.stdout}\n{proc.stderr}\n")
                failures.flush()
            if (i + 1) % 10 == 0:
                log(f"certbot: {i + 1}/{n} done")
        result.wall_seconds = time.perf_counter() - t_all
    return result


# --------------------------------------------------------------------------------------
# report


def report(figures: dict[str, Any]) -> str:
    cap = figures["certautopilot"]
    cb = figures.get("certbot")
    rows: list[tuple[str, str, str]] = [
        ("certificates (P-256)", f"{cap['batch']['n']} (concurrency {cap['batch']['concurrency']})",
         f"{cb['n']} (sequential)" if cb else "skipped"),
        ("throughput, certs/min", fmt(cap["throughput_per_min"], ".1f"),
         fmt(cb["throughput_per_min"], ".1f") if cb else "-"),
        ("median latency, s", fmt(cap["median_seconds"], ".3f"),
         fmt(cb["median_seconds"], ".3f") if cb else "-"),
        ("p95 latency, s", fmt(cap["p95_seconds"], ".3f"),
         fmt(cb["p95_seconds"], ".3f") if cb else "-"),
        ("single cert (idle), s", fmt(cap["single_median_seconds"], ".3f")
         + f" (median of {len(cap['single_seconds'])})",
         (fmt(cb["median_seconds"], ".3f") + " (= its median)") if cb else "-"),
        ("failures", str(cap["failures"]), str(cb["failures"]) if cb else "-"),
        ("wall time, s", fmt(cap["batch"]["wall_seconds"], ".2f"),
         fmt(cb["wall_seconds"], ".2f") if cb else "-"),
    ]
    width = [max(len(r[i]) for r in [("", "CertAutoPilot", "certbot"), *rows]) for i in range(3)]
    lines = ["  ".join(["".ljust(width[0]), "CertAutoPilot".ljust(width[1]), "certbot"]),
             "  ".join("-" * w for w in width)]
    lines += ["  ".join([a.ljust(width[0]), b.ljust(width[1]), c]) for a, b, c in rows]
    ratio = figures.get("throughput_ratio")
    if ratio is not None and cb is not None:
        lines.append(f"throughput ratio CertAutoPilot / certbot: {ratio:.1f}x "
                     f"({cap['batch']['n']} batched vs {cb['n']} sequential certificates)")
    return "\n".join(lines)


def summarize_batch(batch: BatchResult, single: list[float]) -> dict[str, Any]:
    return {
        "batch": asdict(batch) | {"list_poll_seconds": None, "latencies": None,
                                  "post_seconds": None},
        "throughput_per_min": per_minute(batch.issued, batch.wall_seconds),
        "median_seconds": median(batch.latencies),
        "p95_seconds": p95(batch.latencies),
        "min_seconds": min(batch.latencies) if batch.latencies else None,
        "max_seconds": max(batch.latencies) if batch.latencies else None,
        "failures": len(batch.failed) + len(batch.submit_errors) + batch.unfinished,
        "post_median_seconds": median(batch.post_seconds),
        "post_p95_seconds": p95(batch.post_seconds),
        "list_poll_median_seconds": median(batch.list_poll_seconds),
        "service_cpu_ms_per_cert": (batch.service_cpu_seconds * 1000 / batch.issued
                                    if batch.service_cpu_seconds is not None and batch.issued
                                    else None),
        "lab_cpu_ms_per_cert": (batch.lab_cpu_seconds * 1000 / batch.issued
                                if batch.lab_cpu_seconds is not None and batch.issued else None),
        "single_seconds": single,
        "single_median_seconds": median(single),
        "latencies_seconds": sorted(batch.latencies),
    }


def summarize_certbot(cb: CertbotResult) -> dict[str, Any]:
    return {
        "n": cb.n,
        "version": cb.version,
        "throughput_per_min": per_minute(len(cb.durations), cb.wall_seconds),
        "median_seconds": median(cb.durations),
        "p95_seconds": p95(cb.durations),
        "min_seconds": min(cb.durations) if cb.durations else None,
        "max_seconds": max(cb.durations) if cb.durations else None,
        "failures": cb.failures,
        "wall_seconds": cb.wall_seconds,
        "register_seconds": cb.register_seconds,
        "durations_seconds": cb.durations,
    }


# --------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100, help="certificates in the batch")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight")
    parser.add_argument("--certbot-n", type=int, default=None,
                        help="certificates for certbot (default: --n)")
    parser.add_argument("--skip-certbot", action="store_true", help="do not run certbot")
    parser.add_argument("--database-url", default=None,
                        help="CERTAUTOPILOT_DATABASE_URL for the service (default: SQLite)")
    parser.add_argument("--batch-deadline", type=float, default=None,
                        help="stop waiting for the batch after this many seconds "
                             "(default: 60 + 3 s per certificate)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1:
        parser.error("--n and --concurrency must be at least 1")
    if args.certbot_n is None:
        args.certbot_n = args.n
    return args


@contextlib.contextmanager
def running_lab(base: Path) -> Iterator[LabInfo]:
    lab = start_lab_on_free_ports(base)
    try:
        yield lab
    finally:
        stop_lab(base)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = uuid.uuid4().hex[:6]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    serve_log = OUT_DIR / f"issue_batch-{stamp}-serve.log"
    certbot_log = OUT_DIR / f"issue_batch-{stamp}-certbot.log"
    tmp = Path(tempfile.mkdtemp(prefix="cap-bench-"))
    figures: dict[str, Any] = {
        "benchmark": "issue_batch",
        "started_at": stamp,
        "run": run,
        "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "database": "postgresql" if (args.database_url or "").startswith("postgres")
        else "sqlite",
        "notes": [],
    }
    try:
        with running_lab(tmp / "lab") as lab:
            log(f"lab: {lab.directory_url}, DNS 127.0.0.1:{lab.dns_port}")
            env = {**os.environ, **UNLIMITED_BUDGET_ENV,  # Pebble has no rate limits
                   "CERTAUTOPILOT_DATA_DIR": str(tmp / "data"),
                   "CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
                   "CERTAUTOPILOT_LOG_LEVEL": "WARNING",
                   "CERTAUTOPILOT_EXECUTOR_ID": f"bench-{run}"}
            env.pop("CERTAUTOPILOT_DATABASE_URL", None)
            if args.database_url:
                env["CERTAUTOPILOT_DATABASE_URL"] = args.database_url
            service = Service(env=env, log_path=serve_log)
            service.create_token()
            try:
                service.start()
                log(f"service: {service.base_url} (pids {service.pids()}), log {serve_log}")
                figures["certautopilot"] = bench_service(service, lab, args, run)
                figures["service_log_tail"] = service.log_tail(30).splitlines()
            finally:
                service.stop()
                leftover = service.pids()
                if leftover:
                    figures["notes"].append(f"service processes left after stop: {leftover}")
            if not args.skip_certbot:
                if args.certbot_n != args.n:
                    figures["notes"].append(
                        f"certbot issued {args.certbot_n} certificates, CertAutoPilot {args.n}; "
                        "the ratio compares throughputs measured on these different counts")
                cb = run_certbot(lab, tmp / "certbot", args.certbot_n, run, certbot_log)
                figures["certbot"] = summarize_certbot(cb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cap_rate = figures["certautopilot"]["throughput_per_min"]
    cb_rate = figures.get("certbot", {}).get("throughput_per_min")
    figures["throughput_ratio"] = cap_rate / cb_rate if cap_rate and cb_rate else None
    out = OUT_DIR / f"issue_batch-{stamp}.json"
    out.write_text(json.dumps(figures, indent=2, default=str) + "\n")

    print()
    print(report(figures))
    cap = figures["certautopilot"]
    issued = cap["batch"]["issued"] or 1
    split = ", ".join(f"{role} {seconds * 1000 / issued:.0f} ms"
                      for role, seconds in sorted(cap["batch"]["service_cpu_by_role"].items()))
    print(f"CertAutoPilot: POST median {fmt(cap['post_median_seconds'], '.3f')} s, "
          f"p95 {fmt(cap['post_p95_seconds'], '.3f')} s; {cap['batch']['list_polls']} list "
          f"calls, median {fmt(cap['list_poll_median_seconds'], '.3f')} s; "
          f"CPU per certificate: service {fmt(cap['service_cpu_ms_per_cert'], '.0f')} ms "
          f"({split}), lab (Pebble+BIND) {fmt(cap['lab_cpu_ms_per_cert'], '.0f')} ms")
    if cap["batch"]["submit_errors"] or cap["batch"]["failed"] or cap["batch"]["unfinished"]:
        print(f"CertAutoPilot problems: {len(cap['batch']['submit_errors'])} submit errors, "
              f"{len(cap['batch']['failed'])} failed, {cap['batch']['unfinished']} unfinished; "
              f"see {out} and {serve_log}")
        for line in (cap["batch"]["submit_errors"] + list(cap["batch"]["failed"].values()))[:5]:
            print(f"  {line[:300]}")
    other, wall = cap["batch"]["other_cpu_seconds"], cap["batch"]["wall_seconds"]
    if other is not None and wall:
        print(f"machine: {os.cpu_count()} CPUs; during the batch this benchmark's client used "
              f"{cap['batch']['bench_cpu_seconds']:.1f} CPU-s and other processes "
              f"{other:.1f} CPU-s (~{other / wall:.2f} cores busy with other work)")
    for note in figures["notes"]:
        print(f"note: {note}")
    print(f"figures: {out}")
    print(f"service log: {serve_log}")
    return 0


def bench_service(service: Service, lab: LabInfo, args: argparse.Namespace,
                  run: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {service.token}"}
    with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as client:
        setup = set_up(client, lab, run)
        log("warm-up certificate")
        warm, body = issue_one(client, setup, f"warmup-{run}.{ZONE}")
        if body["status"] != "issued":
            raise SystemExit(f"warm-up certificate ended {body['status']}: {body.get('error')}; "
                             f"see {service.log_path}:\n{service.log_tail()}")
        log(f"warm-up issued in {warm:.3f} s")
        warm_timeline = timeline(client, setup, body["id"])
        log("warm-up timeline: " + ", ".join(f"{t} +{dt:.3f}" for t, dt in warm_timeline))
        single: list[float] = []
        single_timeline: list[tuple[str, float]] = []
        for i in range(SINGLE_RUNS):
            seconds, body = issue_one(client, setup, f"single{i}-{run}.{ZONE}")
            if body["status"] == "issued":
                single.append(seconds)
                single_timeline = timeline(client, setup, body["id"])
            else:
                log(f"single certificate {i} ended {body['status']}: {body.get('error')}")
        log(f"single certificate latency: {', '.join(f'{s:.3f}' for s in single)} s")
    deadline = args.batch_deadline or 60.0 + 3.0 * args.n
    log(f"batch: {args.n} certificates, {args.concurrency} in flight")
    pids = service.pids()
    roles = {pid: process_role(pid) for pid in pids}
    lab_pids = [lab.pebble_pid, lab.named_pid]
    by_pid0 = {pid: cpu_seconds([pid]) for pid in pids}
    cpu0, lab0 = cpu_seconds(pids), cpu_seconds(lab_pids)
    machine0, own0 = machine_busy_seconds(), own_cpu_seconds()
    batch = asyncio.run(run_batch(service.base_url, service.token, setup, args.n,
                                  args.concurrency, run, deadline))
    batch.service_cpu_seconds = cpu_seconds(pids) - cpu0
    batch.lab_cpu_seconds = cpu_seconds(lab_pids) - lab0
    batch.bench_cpu_seconds = own_cpu_seconds() - own0
    batch.other_cpu_seconds = max(0.0, machine_busy_seconds() - machine0
                                  - batch.service_cpu_seconds - batch.lab_cpu_seconds
                                  - batch.bench_cpu_seconds)
    for pid in pids:
        role = roles[pid]
        batch.service_cpu_by_role[role] = (batch.service_cpu_by_role.get(role, 0.0)
                                           + cpu_seconds([pid]) - by_pid0[pid])
    log(f"batch: {batch.issued} issued, {len(batch.failed)} failed, "
        f"{batch.unfinished} unfinished, {len(batch.submit_errors)} submit errors")
    figures = summarize_batch(batch, single)
    figures["warmup_seconds"] = warm
    figures["warmup_timeline"] = warm_timeline
    figures["last_single_timeline"] = single_timeline
    figures["batch"]["failed"] = batch.failed
    figures["batch"]["submit_errors"] = batch.submit_errors
    return figures


if __name__ == "__main__":
    sys.exit(main())
