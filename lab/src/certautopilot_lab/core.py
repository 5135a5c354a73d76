"""Start, find and stop a local ACME lab: BIND 9 (RFC 2136 + TSIG) and Pebble validating through it.

Everything a lab writes lives under its ``base_dir``; several labs (a demo, a test session, a
benchmark) can run at once in different directories on different ports. Only processes
recorded in ``base_dir/lab.json`` -- and still running this lab's config -- are ever stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from certautopilot.errors import ConfigError
from certautopilot_lab import configs, probes, procs
from certautopilot_lab.info import LAB_FILE, ZONES, LabInfo
from certautopilot_lab.ports import free_ports, port_free, shared_with_others
from certautopilot_lab.tls import ensure_tls

START_DEADLINE_SECONDS = 30.0


class PortInUse(ConfigError):
    """One of the lab's ports is served by something else (retry on other ports)."""


@dataclass(frozen=True)
class CASettings:
    """How Pebble behaves; a running lab is only reused when these match."""

    cert_validity_seconds: int
    eab_required: bool
    eab_keys: tuple[tuple[str, str], ...]
    nonce_reject_percent: int


def start_lab(
    base_dir: Path,
    *,
    dns_port: int = 8053,
    acme_port: int = 14000,
    mgmt_port: int = 15000,
    cert_validity_seconds: int = 7776000,
    eab_keys: dict[str, str] | None = None,
    eab_required: bool = False,
    nonce_reject_percent: int = 0,
) -> LabInfo:
    """Start the lab in ``base_dir`` and wait until BIND and Pebble answer.

    Idempotent: when the lab recorded in ``base_dir`` is running, it is returned as it is
    (its own ports win over the ones asked for); if it runs with other CA settings
    (validity, EAB, nonce rejection) that is a :class:`ConfigError` -- stop it first.
    """
    _check_args(dns_port, acme_port, mgmt_port, cert_validity_seconds, nonce_reject_percent)
    base_dir = base_dir.expanduser().resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    wanted = CASettings(
        cert_validity_seconds=cert_validity_seconds,
        eab_required=eab_required,
        eab_keys=tuple(sorted((eab_keys or {}).items())),
        nonce_reject_percent=nonce_reject_percent,
    )
    with _locked(base_dir):
        current = _read(base_dir)
        if current is not None and _running(current):
            _check_same_settings(current, wanted)
            return current
        if current is not None:
            _stop(current)
        named = procs.find_binary("named", "bind9")
        pebble = procs.find_binary("pebble", "pebble")
        _check_ports_free(dns_port, acme_port, mgmt_port)
        info = _launch(base_dir, named, pebble, dns_port, acme_port, mgmt_port, wanted)
        configs.write_private(base_dir / LAB_FILE, info.to_json() + "\n")
        return info


def start_lab_on_free_ports(
    base_dir: Path,
    *,
    attempts: int = 4,
    cert_validity_seconds: int = 7776000,
    eab_keys: dict[str, str] | None = None,
    eab_required: bool = False,
    nonce_reject_percent: int = 0,
) -> LabInfo:
    """:func:`start_lab` on randomly chosen free ports, retrying when a port race is lost.

    For test sessions and benchmarks that run beside other labs.
    """
    for attempt in range(attempts):
        dns_port, acme_port, mgmt_port = free_ports(3)
        try:
            return start_lab(
                base_dir,
                dns_port=dns_port,
                acme_port=acme_port,
                mgmt_port=mgmt_port,
                cert_validity_seconds=cert_validity_seconds,
                eab_keys=eab_keys,
                eab_required=eab_required,
                nonce_reject_percent=nonce_reject_percent,
            )
        except PortInUse:
            if attempt == attempts - 1:
                raise
    raise ConfigError("attempts must be at least 1")


def stop_lab(base_dir: Path) -> None:
    """Stop the servers recorded in ``base_dir/lab.json`` (if still ours) and forget the lab."""
    base_dir = base_dir.expanduser().resolve()
    if not (base_dir / LAB_FILE).exists():
        return
    with _locked(base_dir):
        current = _read(base_dir)
        if current is not None:
            _stop(current)
        (base_dir / LAB_FILE).unlink(missing_ok=True)


def lab_status(base_dir: Path) -> LabInfo | None:
    """The lab running in ``base_dir``, or None (no ``lab.json``, or its servers are gone)."""
    current = _read(base_dir.expanduser().resolve())
    if current is not None and _running(current):
        return current
    return None


def named_paths(base_dir: Path) -> configs.NamedPaths:
    return configs.NamedPaths(base_dir / "named")


def pebble_config_path(base_dir: Path) -> Path:
    return base_dir / "pebble" / "pebble-config.json"


def _launch(
    base_dir: Path,
    named: str,
    pebble: str,
    dns_port: int,
    acme_port: int,
    mgmt_port: int,
    wanted: CASettings,
) -> LabInfo:
    tls = ensure_tls(base_dir / "tls")
    paths = named_paths(base_dir)
    secret = configs.ensure_tsig_secret(paths.key)
    configs.write_named_files(paths, dns_port)
    pebble_cfg = pebble_config_path(base_dir)
    pebble_cfg.parent.mkdir(parents=True, exist_ok=True)
    pebble_cfg.write_text(
        configs.pebble_config(
            acme_port=acme_port,
            mgmt_port=mgmt_port,
            cert=tls.leaf_cert,
            key=tls.leaf_key,
            validity_seconds=wanted.cert_validity_seconds,
            eab_required=wanted.eab_required,
            eab_keys=dict(wanted.eab_keys),
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
    named_proc = procs.spawn(
        [named, "-f", "-4", "-c", str(paths.conf)], log_path=paths.root / "named.out", env=env
    )
    env |= {
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_AUTHZREUSE": "0",
        "PEBBLE_WFE_NONCEREJECT": str(wanted.nonce_reject_percent),
    }
    pebble_proc = procs.spawn(
        [pebble, "-config", str(pebble_cfg), "-dnsserver", f"127.0.0.1:{dns_port}"],
        log_path=pebble_cfg.parent / "pebble.log",
        env=env,
    )
    info = LabInfo(
        base_dir=base_dir,
        dns_port=dns_port,
        acme_port=acme_port,
        mgmt_port=mgmt_port,
        ca_bundle_path=tls.ca_cert,
        tsig_secret=secret,
        named_pid=named_proc.pid,
        pebble_pid=pebble_proc.pid,
        cert_validity_seconds=wanted.cert_validity_seconds,
        eab_required=wanted.eab_required,
        eab_keys=wanted.eab_keys,
        nonce_reject_percent=wanted.nonce_reject_percent,
    )
    try:
        _wait_ready(info, named_proc, pebble_proc)
    except BaseException:
        procs.stop_child(pebble_proc)
        procs.stop_child(named_proc)
        raise
    return info


def _wait_ready(
    info: LabInfo, named: subprocess.Popen[bytes], pebble: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    pending_zones = list(info.zones)
    pebble_up = False
    paths = named_paths(info.base_dir)
    while True:
        if procs.exited(named):
            raise ConfigError(_died("named", paths.root / "named.out", paths.log))
        if procs.exited(pebble):
            pebble_log = pebble_config_path(info.base_dir).parent / "pebble.log"
            message = _died("pebble", pebble_log, None)
            raise (
                PortInUse(message) if "address already in use" in message else ConfigError(message)
            )
        pending_zones = [z for z in pending_zones if not probes.soa_ready(info, z)]
        pebble_up = pebble_up or probes.https_ready(info.directory_url, info.ca_bundle_path)
        if not pending_zones and pebble_up:
            if shared_with_others(info.dns_port, info.named_pid):
                raise PortInUse(
                    f"DNS port 127.0.0.1:{info.dns_port} is also bound by another process "
                    "(named shares ports through SO_REUSEPORT); choose another port"
                )
            return
        if time.monotonic() > deadline:
            waiting = [f"named (zones {', '.join(pending_zones)})"] if pending_zones else []
            waiting += [] if pebble_up else [f"pebble ({info.directory_url})"]
            raise ConfigError(
                f"lab in {info.base_dir} not ready after {START_DEADLINE_SECONDS:.0f}s: "
                f"no answer from {' and '.join(waiting)}"
            )
        time.sleep(0.02)


def _died(program: str, out_log: Path, server_log: Path | None) -> str:
    tail = procs.log_tail(out_log)
    if server_log is not None:
        tail = (tail + "\n" + procs.log_tail(server_log)).strip()
    return (
        f"{program} exited during lab start-up (port taken or bad config?); last log lines:\n{tail}"
    )


def _running(info: LabInfo) -> bool:
    named_conf = str(named_paths(info.base_dir).conf)
    pebble_cfg = str(pebble_config_path(info.base_dir))
    return procs.is_ours(info.named_pid, "named", named_conf) and procs.is_ours(
        info.pebble_pid, "pebble", pebble_cfg
    )


def _stop(info: LabInfo) -> None:
    procs.terminate(info.pebble_pid, "pebble", str(pebble_config_path(info.base_dir)))
    procs.terminate(info.named_pid, "named", str(named_paths(info.base_dir).conf))


def _read(base_dir: Path) -> LabInfo | None:
    try:
        text = (base_dir / LAB_FILE).read_text()
    except FileNotFoundError:
        return None
    try:
        info = LabInfo.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None
    # A copied or moved lab.json must not make us signal another directory's servers.
    return info if info.base_dir == base_dir else None


def _check_args(dns: int, acme: int, mgmt: int, validity: int, nonce_reject: int) -> None:
    ports = (dns, acme, mgmt)
    if any(not 1 <= p <= 65535 for p in ports) or len(set(ports)) != 3:
        raise ConfigError(f"lab ports must be three distinct ports in 1..65535, got {ports}")
    if validity <= 0:
        raise ConfigError("cert_validity_seconds must be positive")
    if not 0 <= nonce_reject <= 100:
        raise ConfigError("nonce_reject_percent must be within 0..100")


def _check_ports_free(dns_port: int, acme_port: int, mgmt_port: int) -> None:
    checks = [("DNS", dns_port, True), ("ACME", acme_port, False), ("management", mgmt_port, False)]
    for label, port, udp in checks:
        if not port_free(port, udp=udp):
            raise PortInUse(
                f"the lab's {label} port 127.0.0.1:{port} is already in use "
                "(another lab or server?); choose another port"
            )


def _check_same_settings(current: LabInfo, wanted: CASettings) -> None:
    differs = [
        f.name
        for f in dataclasses.fields(wanted)
        if getattr(current, f.name) != getattr(wanted, f.name)
    ]
    if differs:
        raise ConfigError(
            f"a lab is already running in {current.base_dir} with other settings "
            f"({', '.join(differs)}); stop it first"
        )


@contextlib.contextmanager
def _locked(base_dir: Path) -> Iterator[None]:
    """One start/stop at a time per lab directory, across processes."""
    with (base_dir / ".lab.lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


__all__ = [
    "ZONES",
    "LabInfo",
    "PortInUse",
    "lab_status",
    "start_lab",
    "start_lab_on_free_ports",
    "stop_lab",
]
