"""acme2certifier 0.46.3 as a second, independent ACME CA beside the lab's Pebble.

It validates DNS-01 through the lab's BIND. acme2certifier asks only port 53 of the servers
in its ``dns_server_list``, so each instance gets a loopback address of its own
(``127.x.y.z``, drawn at random and checked free) whose port 53 ``socat`` forwards to the
lab's DNS port; several labs (pytest-xdist workers) therefore never share a forward.
Binding port 53 needs root (the CI machines and the lab's ``make setup`` run as root).

It runs from a venv of its own (``.venv-a2c`` at the repository root, made by ``make
setup``): acme2certifier pins libraries the service does not want. gunicorn serves it over
TLS with the lab's certificate, so clients trust the lab's ``lab-ca.pem``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from certautopilot.errors import ConfigError
from certautopilot_lab import probes, procs
from certautopilot_lab.a2c_files import WSGI_MODULE, A2CPaths, A2CSettings, ensure_issuing_ca
from certautopilot_lab.a2c_files import write_files as _write_files
from certautopilot_lab.configs import write_private
from certautopilot_lab.info import LabInfo
from certautopilot_lab.ports import free_port, port_free
from certautopilot_lab.tls import ensure_tls

A2C_FILE = "a2c.json"
START_DEADLINE_SECONDS = 40.0
VERSION = "0.46.3"
_REPO_VENV = Path(__file__).resolve().parents[3] / ".venv-a2c"


@dataclass(frozen=True)
class A2CInfo:
    """A started acme2certifier: where it listens, what to trust, what it signs with."""

    base_dir: Path
    acme_port: int
    forward_host: str
    ca_bundle_path: Path  # trust for its HTTPS listener (the lab's CA)
    root_path: Path  # the issuing CA of the certificates it signs
    gunicorn_pid: int
    socat_pids: tuple[int, ...]
    settings: A2CSettings = field(default_factory=A2CSettings)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/directory"

    @property
    def crl_path(self) -> Path:
        return A2CPaths(self.base_dir).crl

    def to_json(self) -> str:
        raw: dict[str, Any] = asdict(self)
        raw = {k: str(v) if isinstance(v, Path) else v for k, v in raw.items()}
        return json.dumps(raw, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> A2CInfo:
        raw = json.loads(text)
        s = raw["settings"]
        settings = A2CSettings(
            cert_validity_days=int(s["cert_validity_days"]),
            eab_required=bool(s["eab_required"]),
            eab_keys=tuple((str(k), str(v)) for k, v in s["eab_keys"]),
            renewal_force=bool(s["renewal_force"]),
            profiles=tuple((str(k), str(v)) for k, v in s.get("profiles", ())),
        )
        return cls(
            base_dir=Path(raw["base_dir"]),
            acme_port=int(raw["acme_port"]),
            forward_host=str(raw["forward_host"]),
            ca_bundle_path=Path(raw["ca_bundle_path"]),
            root_path=Path(raw["root_path"]),
            gunicorn_pid=int(raw["gunicorn_pid"]),
            socat_pids=tuple(int(p) for p in raw["socat_pids"]),
            settings=settings,
        )


def find_venv(venv: Path | None = None) -> Path:
    """The venv acme2certifier is installed in (``make setup`` makes ``.venv-a2c``)."""
    found = venv or _REPO_VENV
    if not (found / "bin" / "gunicorn").exists():
        raise ConfigError(
            f"acme2certifier is not installed in {found}: run `make setup` (or python3 -m venv "
            f"{found} && {found}/bin/pip install acme2certifier=={VERSION} gunicorn)"
        )
    return found


def start_a2c(
    base_dir: Path,
    lab: LabInfo,
    settings: A2CSettings | None = None,
    *,
    venv: Path | None = None,
    attempts: int = 4,
) -> A2CInfo:
    """Start acme2certifier in ``base_dir`` validating through ``lab``'s DNS server; wait
    until its directory answers and the forward reaches the lab's BIND. An instance
    recorded in ``base_dir`` is stopped first. Lost port races are retried."""
    base_dir = base_dir.expanduser().resolve()
    settings = settings or A2CSettings()
    python = find_venv(venv) / "bin" / "python"
    socat = procs.find_binary("socat", "socat")
    stop_a2c(base_dir)
    for attempt in range(attempts):
        try:
            info = _launch(base_dir, lab, settings, str(python), socat)
        except _Retry:
            if attempt == attempts - 1:
                raise
            continue
        write_private(base_dir / A2C_FILE, info.to_json() + "\n")
        return info
    raise ConfigError("attempts must be at least 1")


def stop_a2c(base_dir: Path) -> None:
    """Stop the processes recorded in ``base_dir/a2c.json`` (only if still ours)."""
    base_dir = base_dir.expanduser().resolve()
    info = _read(base_dir)
    if info is not None:
        _stop(info)
    (base_dir / A2C_FILE).unlink(missing_ok=True)


def a2c_status(base_dir: Path) -> A2CInfo | None:
    info = _read(base_dir.expanduser().resolve())
    if info is not None and procs.is_ours(info.gunicorn_pid, "python", str(info.base_dir)):
        return info
    return None


class _Retry(ConfigError):
    """A port or loopback address was taken meanwhile: try others."""


def free_loopback_host() -> str:
    """A loopback address other than 127.0.0.1 whose port 53 is free (TCP and UDP).

    Drawn at random from 127.64.0.0-127.254.255.254: parallel labs practically never pick
    the same one, and a lost race shows as socat failing to bind, which is retried."""
    rng = random.SystemRandom()
    for _ in range(50):
        host = f"127.{rng.randint(64, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if port_free(53, host=host, udp=True):
            return host
    raise ConfigError("no loopback address with a free port 53 found (is this run as root?)")


def _launch(
    base_dir: Path, lab: LabInfo, settings: A2CSettings, python: str, socat: str
) -> A2CInfo:
    paths = A2CPaths(base_dir)
    tls = ensure_tls(lab.base_dir / "tls")
    ensure_issuing_ca(paths)
    host = free_loopback_host()
    port = free_port(udp=False)
    _write_files(paths, settings, dns_host=host)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACME", "PYTHON"))}
    env |= {"ACME_SRV_CONFIGFILE": str(paths.config), "ACME2CERTIFIER_BASE_DIR": str(base_dir)}
    started: list[int] = []
    try:
        for proto in ("UDP4", "TCP4"):
            argv = [socat, "-T", "5", *_forward(proto, host, lab.dns_port)]
            started.append(procs.spawn(argv, log_path=base_dir / "socat.log", env=env).pid)
        gunicorn = procs.spawn(
            [
                python,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--certfile",
                str(tls.leaf_cert),
                "--keyfile",
                str(tls.leaf_key),
                "--workers",
                "1",
                "--threads",
                "4",
                "--graceful-timeout",
                "2",
                "--no-control-socket",
                "--chdir",
                str(base_dir),
                f"{WSGI_MODULE}:application",
            ],
            log_path=paths.log,
            env=env,
        )
        info = A2CInfo(
            base_dir=base_dir,
            acme_port=port,
            forward_host=host,
            ca_bundle_path=tls.ca_cert,
            root_path=paths.ca_cert,
            gunicorn_pid=gunicorn.pid,
            socat_pids=tuple(started),
            settings=settings,
        )
        started.append(gunicorn.pid)
        _wait_ready(info, lab)
    except BaseException:
        for pid in reversed(started):
            _terminate(pid, base_dir, host)
        raise
    return info


def _forward(proto: str, host: str, dns_port: int) -> list[str]:
    return [f"{proto}-LISTEN:53,bind={host},fork,reuseaddr", f"{proto}:127.0.0.1:{dns_port}"]


def _wait_ready(info: A2CInfo, lab: LabInfo) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    through_forward = replace(lab, dns_host=info.forward_host, dns_port=53)
    forward_ok = directory_ok = False
    while True:
        for pid in info.socat_pids:
            if not procs.is_ours(pid, "socat", _forward("UDP4", info.forward_host, 0)[0]) and (
                not procs.is_ours(pid, "socat", _forward("TCP4", info.forward_host, 0)[0])
            ):
                raise _Retry(f"socat could not forward {info.forward_host}:53: {_tail(info)}")
        if not procs.is_ours(info.gunicorn_pid, "python", str(info.base_dir)):
            log = procs.log_tail(A2CPaths(info.base_dir).log, 20)
            if "already in use" in log:
                raise _Retry(f"port {info.acme_port} taken")
            raise ConfigError(f"acme2certifier (gunicorn) exited during start-up:\n{log}")
        # The forward reaches *this* lab's BIND (the SOA query is signed with its key).
        forward_ok = forward_ok or probes.soa_ready(through_forward, lab.zones[0])
        directory_ok = directory_ok or probes.https_ready(info.directory_url, info.ca_bundle_path)
        if forward_ok and directory_ok:
            return
        if time.monotonic() > deadline:
            raise ConfigError(
                f"acme2certifier in {info.base_dir} not ready after "
                f"{START_DEADLINE_SECONDS:.0f}s (forward {forward_ok}, directory {directory_ok})"
            )
        time.sleep(0.05)


def _tail(info: A2CInfo) -> str:
    return procs.log_tail(info.base_dir / "socat.log", 4)


def _stop(info: A2CInfo) -> None:
    _terminate(info.gunicorn_pid, info.base_dir, info.forward_host)
    for pid in info.socat_pids:
        _terminate(pid, info.base_dir, info.forward_host)


def _terminate(pid: int, base_dir: Path, host: str) -> None:
    """gunicorn by its ``--chdir``; socat by its listen address - and its forked children,
    which live in its process group (``procs.spawn`` starts a new session)."""
    if procs.is_ours(pid, "python", str(base_dir)):
        procs.terminate(pid, "python", str(base_dir))
        return
    for proto in ("UDP4", "TCP4"):
        marker = _forward(proto, host, 0)[0]
        if procs.is_ours(pid, "socat", marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            procs.terminate(pid, "socat", marker)
            return


def _read(base_dir: Path) -> A2CInfo | None:
    try:
        info = A2CInfo.from_json((base_dir / A2C_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.base_dir == base_dir else None


__all__ = ["A2CInfo", "A2CSettings", "a2c_status", "find_venv", "start_a2c", "stop_a2c"]
