"""Fan-out benchmark: one certificate deployed to N (default 200) targets on loopback.

A real ``certautopilot serve`` (API + its worker processes) issues one certificate from the
local ACME lab (Pebble + BIND, started here on free ports) with N webhook targets attached;
every target is an HTTPS endpoint of one receiver in this process (its own path each), which
counts the requests in flight. Then the same N targets are redeployed through
``POST .../deploy``, to time the fan-out alone.

Printed: wall time from ``cert.issued`` to the last deployment finished (and for the
redeploy, from the POST), the concurrency reached (most requests in flight at the receiver,
and most deployments overlapping by their recorded start/finish), per-deployment latency.
Nothing is asserted about time.

Usage::

    .venv/bin/python bench/fanout.py [--targets 200] [--concurrency 16] [--delay 0]
                                     [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from issue_batch import Service, api_ok, cpu_seconds, log, running_lab, set_up

SECRET = "bench-webhook-secret-0123456789"


@dataclass
class Receiver:
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0
    count: int = 0


def _handler(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            with receiver.lock:
                receiver.in_flight += 1
                receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
            try:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                with receiver.lock:
                    receiver.in_flight -= 1
                    receiver.count += 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def receiving(receiver: Receiver, cert: Path, key: Path) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    server.request_queue_size = 1024
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "hook.pem").write_bytes(pem)
    (directory / "hook.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "hook.pem", directory / "hook.key", pem.decode()


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def max_overlap(deployments: list[dict[str, Any]]) -> int:
    """Most deployments talking to their targets at one instant, from each deployment's
    recorded I/O start and duration."""
    from datetime import timedelta

    points: list[tuple[datetime, int]] = []
    for d in deployments:
        timing = d["result"] or d["error"] or {}
        if "io_started_at" in timing:
            start = _at(timing["io_started_at"])
            points += [(start, 1), (start + timedelta(milliseconds=timing["io_ms"]), -1)]
    best = current = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        current += step
        best = max(best, current)
    return best


def wait_all(
    client: httpx.Client, base: str, ids: set[str] | None, n: int, timeout: float
) -> list[dict[str, Any]]:
    """Each target's latest deployment (the ``ids`` ones, if given) once N finished."""
    deadline = time.monotonic() + timeout
    done: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        body = api_ok(client.get(f"{base}/deployments", params={"history": 0}), 200)
        latest = [i["latest"] for i in body["items"] if i["latest"]]
        rows = [d for d in latest if ids is None or d["id"] in ids]
        done = [d for d in rows if d["status"] in ("succeeded", "failed")]
        if len(done) >= n:
            return done
        time.sleep(0.05)
    raise SystemExit(f"only {len(done)} of {n} deployments finished within {timeout:.0f} s")


def figures(
    name: str, rows: list[dict[str, Any]], start: datetime, receiver_max: int, cpu: float
) -> dict[str, Any]:
    ends = [_at(d["finished_at"]) for d in rows]
    latencies = [(_at(d["finished_at"]) - _at(d["started_at"])).total_seconds() for d in rows]
    latencies.sort()
    return {
        "phase": name,
        "deployments": len(rows),
        "succeeded": sum(d["status"] == "succeeded" for d in rows),
        "failed": sum(d["status"] == "failed" for d in rows),
        "wall_seconds": round((max(ends) - start).total_seconds(), 3),
        "concurrency_at_receiver": receiver_max,
        "concurrency_by_records": max_overlap(rows),
        "latency_median_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p95_ms": round(latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000, 1),
        "service_cpu_ms_per_deployment": round(cpu * 1000 / max(1, len(rows)), 1),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="distribution queue limit per worker"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="receiver delay per request")
    parser.add_argument("--database-url", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    run = uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="cap-fanout-"))
    receiver = Receiver(delay=args.delay)
    cert_path, key_path, ca_pem = self_signed(tmp)
    results: list[dict[str, Any]] = []
    with (
        running_lab(tmp / "lab") as lab,
        receiving(receiver, cert_path, key_path) as hook_port,
    ):
        env = {
            **os.environ,
            "CERTAUTOPILOT_DATA_DIR": str(tmp / "data"),
            "CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
            "CERTAUTOPILOT_LOG_LEVEL": "WARNING",
            "CERTAUTOPILOT_EXECUTOR_ID": f"fanout-{run}",
            "CERTAUTOPILOT_DISTRIBUTION_CONCURRENCY": str(args.concurrency),
        }
        env.pop("CERTAUTOPILOT_DATABASE_URL", None)
        if args.database_url:
            env["CERTAUTOPILOT_DATABASE_URL"] = args.database_url
        service = Service(env=env, log_path=tmp / "serve.log")
        service.create_token()
        service.start()
        try:
            headers = {"Authorization": f"Bearer {service.token}"}
            with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as client:
                setup = set_up(client, lab, run)
                p = setup.project
                log(f"creating {args.targets} webhook targets")
                ids = [
                    api_ok(
                        client.post(
                            f"/api/v1/projects/{p}/targets",
                            json={
                                "name": f"hook-{i:04d}",
                                "kind": "webhook",
                                "webhook": {
                                    "url": f"https://127.0.0.1:{hook_port}/hook/{i}",
                                    "secret": SECRET,
                                    "ca_bundle_pem": ca_pem,
                                },
                            },
                        ),
                        201,
                    )["id"]
                    for i in range(args.targets)
                ]
                log("issuing one certificate with every target attached")
                created = api_ok(
                    client.post(
                        f"/api/v1/projects/{p}/certificates",
                        json={
                            "issuer": setup.issuer,
                            "common_name": "fanout.example.test",
                            "distribution_targets": ids,
                        },
                    ),
                    202,
                )
                base = f"/api/v1/projects/{p}/certificates/{created['id']}"
                cpu0 = cpu_seconds(service.pids())
                rows = wait_all(client, base, None, args.targets, 600)
                cpu1 = cpu_seconds(service.pids())
                events = api_ok(client.get(f"{base}/timeline"), 200)["events"]
                issued_at = next(_at(e["at"]) for e in events if e["type"] == "cert.issued")
                results.append(
                    figures("issue + fan-out", rows, issued_at, receiver.max_in_flight, cpu1 - cpu0)
                )

                receiver.max_in_flight = 0
                log("redeploying to every target")
                started = datetime.now().astimezone()
                cpu0 = cpu_seconds(service.pids())
                again = api_ok(client.post(f"{base}/deploy", json={}), 202)
                wanted = {d["id"] for d in again["deployments"]}
                rows = wait_all(client, base, wanted, args.targets, 600)
                cpu1 = cpu_seconds(service.pids())
                results.append(
                    figures("redeploy", rows, started, receiver.max_in_flight, cpu1 - cpu0)
                )
        finally:
            service.stop()
    workers = "2 (serve's default)"
    print(
        f"\nfan-out of one certificate to {args.targets} webhook targets on loopback "
        f"(queue limit {args.concurrency} per worker, {workers} workers, receiver delay "
        f"{args.delay * 1000:.0f} ms, {'PostgreSQL' if args.database_url else 'SQLite'})"
    )
    print(
        f"{'phase':<16} {'ok':>4} {'failed':>6} {'wall s':>8} {'conc@recv':>9} "
        f"{'conc@rows':>9} {'med ms':>8} {'p95 ms':>8} {'cpu ms/dep':>10}"
    )
    for r in results:
        print(
            f"{r['phase']:<16} {r['succeeded']:>4} {r['failed']:>6} {r['wall_seconds']:>8.2f} "
            f"{r['concurrency_at_receiver']:>9} {r['concurrency_by_records']:>9} "
            f"{r['latency_median_ms']:>8.1f} {r['latency_p95_ms']:>8.1f} "
            f"{r['service_cpu_ms_per_deployment']:>10.1f}"
        )
    print(
        f"machine: {os.cpu_count()} CPUs, load average before the run {load_before}; "
        "conc@recv = most requests in flight at the receiver, conc@rows = most deployments "
        "in their I/O at once (recorded), cpu = serve + workers (includes the API answering "
        "this script's polls)"
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
