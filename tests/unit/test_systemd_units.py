"""The systemd units in deploy/systemd: valid to systemd itself (``systemd-analyze verify``,
from Debian's systemd package, which installs and runs without a running systemd), and
running the commands the README says they run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED = "/opt/certautopilot/venv/bin/certautopilot"  # where the README installs it


def _exec_start(unit: str) -> str:
    (line,) = [x for x in (UNITS / unit).read_text().splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_the_units_run_the_api_alone_and_numbered_workers() -> None:
    assert _exec_start("certautopilot.service").split()[1:] == [
        "serve", "--host", "127.0.0.1", "--port", "8000", "--workers", "0",
    ]  # fmt: skip
    assert _exec_start("certautopilot-worker@.service") == f"{INSTALLED} worker"
    worker = (UNITS / "certautopilot-worker@.service").read_text()
    assert "Environment=CERTAUTOPILOT_EXECUTOR_ID=%H-worker-%i" in worker


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """verify checks that ExecStart is executable, so the copies point at this venv's
    ``certautopilot``; an unknown key or a bad value is a warning on stderr (exit 0), so
    stderr must be empty too."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd, make setup)")
    here = str(Path(sys.executable).parent / "certautopilot")
    names = []
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text().replace(INSTALLED, here)
        (tmp_path / unit.name).write_text(text)
        names.append(unit.name)
    (tmp_path / "certautopilot-worker@1.service").write_text(
        (tmp_path / "certautopilot-worker@.service").read_text()
    )
    names.append("certautopilot-worker@1.service")
    done = subprocess.run(
        [analyze, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_verify_would_notice_a_mistake(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key is reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd, make setup)")
    here = str(Path(sys.executable).parent / "certautopilot")
    text = (UNITS / "certautopilot.service").read_text().replace(INSTALLED, here)
    (tmp_path / "certautopilot.service").write_text(text.replace("ProtectHome=", "ProtectHomes="))
    done = subprocess.run(
        [analyze, "verify", "certautopilot.service"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "ProtectHomes" in done.stderr
