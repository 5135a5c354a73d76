"""``certautopilot serve`` stops its worker children on SIGTERM and SIGINT, and workers whose
serve died by SIGKILL stop by themselves (no orphan keeps an executor id the next serve reuses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from certautopilot_lab import free_port
from tests.conftest import Service


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _start_serve(service: Service, tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A serve with two workers on its own SQLite database, once it answers and both workers
    said they run."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **service.env,
        "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
        "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CERTAUTOPILOT_EXECUTOR_ID": "signals",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "certautopilot.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        text = log.read_text()
        if "worker signals-1 running" in text and "worker signals-2 running" in text:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    children = _children(proc.pid)
    assert len(children) == 2
    return proc, children


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_serve_stops_its_workers(
    service: Service, tmp_path: Path, sig: signal.Signals
) -> None:
    proc, children = _start_serve(service, tmp_path)
    try:
        proc.send_signal(sig)
        proc.wait(timeout=60)
        # serve waits for its workers before it exits: none may be left running.
        assert [c for c in children if _alive(c)] == []
    finally:
        for pid in [proc.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_of_a_killed_serve_stop_by_themselves(service: Service, tmp_path: Path) -> None:
    proc, children = _start_serve(service, tmp_path)
    try:
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(_alive(c) for c in children):
            assert time.monotonic() < deadline, "orphaned workers are still running"
            time.sleep(0.1)
    finally:
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
