"""Starting and stopping the lab's own server processes, and nothing else.

A process is only ever signalled after ``/proc/<pid>/cmdline`` shows that it still is the
program we started *with the config file of this lab*, so a recycled pid or another lab's
server is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from certautopilot.errors import ConfigError

# Popen objects of servers this interpreter started, so it can reap them (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"]
)


def find_binary(name: str, package: str) -> str:
    found = shutil.which(name, path=_SEARCH_PATH)
    if found is None:
        raise ConfigError(f"{name} is not installed: apt-get install -y {package}")
    return found


def spawn(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it outlives this process), output to ``log_path``."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=log_path.parent,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ours(pid: int, program: str, marker: str) -> bool:
    """``pid`` is alive, runs ``program`` (basename of argv[0]) and has ``marker`` in its argv."""
    if pid <= 0:
        return False
    _reap(pid)
    argv = cmdline(pid)
    for _ in range(50):
        # Empty for a zombie or a gone process, but also for a moment while a fresh child
        # is still inside execve().
        if argv or _state(pid) in ("", "Z", "X"):
            break
        time.sleep(0.005)
        argv = cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == program and marker in argv


def stop_child(proc: subprocess.Popen[bytes], *, grace_seconds: float = 5.0) -> None:
    """Stop a server this interpreter started and has not reaped (its pid cannot be reused)."""
    _CHILDREN.pop(proc.pid, None)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def terminate(pid: int, program: str, marker: str, *, grace_seconds: float = 5.0) -> None:
    """SIGTERM ``pid`` if it is ours; SIGKILL it if it has not gone after ``grace_seconds``."""
    if not is_ours(pid, program, marker):
        _CHILDREN.pop(pid, None)
        return
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, program, marker, grace_seconds) and is_ours(pid, program, marker):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, program, marker, 2.0)
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:  # our own child: reap it now rather than leave a zombie
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)


def exited(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _state(pid: int) -> str:
    """The one-letter state from ``/proc/<pid>/stat``; "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0]


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, program: str, marker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_ours(pid, program, marker):
            return True
        time.sleep(0.02)
    return not is_ours(pid, program, marker)


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        del _CHILDREN[pid]
