"""``serve`` at start clears the multiprocess metric files of processes that are gone and
keeps those of processes that still run (a co-hosted worker's counters go on)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from certautopilot.cli.main import clear_dead_metrics_files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _count(directory: Path, pid: int, value: int) -> None:
    """A real process with ``pid``'s files: written by prometheus-client itself."""
    code = (
        "from prometheus_client import values, Counter\n"
        f"values.ValueClass = values.MultiProcessValue(lambda: {pid})\n"
        "Counter('certautopilot_renewals', 'x', ['outcome'])"
        f".labels(outcome='renewed').inc({value})\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _total(directory: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    value = registry.get_sample_value("certautopilot_renewals_total", {"outcome": "renewed"})
    return value or 0.0


def test_only_the_files_of_dead_processes_are_cleared(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        _count(tmp_path, live.pid, 3)
        _count(tmp_path, dead, 5)
        assert _total(tmp_path) == 8
        (tmp_path / "not-a-pid.db").write_bytes(b"")  # nobody's: cleared too

        removed = clear_dead_metrics_files(tmp_path)

        assert sorted(p.name for p in removed) == sorted([f"counter_{dead}.db", "not-a-pid.db"])
        assert (tmp_path / f"counter_{live.pid}.db").exists()
        assert _total(tmp_path) == 3  # the live worker's count goes on
    finally:
        live.kill()
        live.wait()
    assert [p.name for p in clear_dead_metrics_files(tmp_path)] == [f"counter_{live.pid}.db"]
    assert _total(tmp_path) == 0


def test_a_missing_directory_is_made(tmp_path: Path) -> None:
    assert clear_dead_metrics_files(tmp_path / "metrics") == []
    assert (tmp_path / "metrics").is_dir()
