"""Pebble + pebble-challtestsrv on free loopback ports, for the ACME client tests.

Debian's ``pebble`` package ships no test certificates, so a tiny CA and a leaf for
``localhost``/``127.0.0.1`` are made here with ``cryptography``. ``pebble-challtestsrv``
is Pebble's DNS server: TXT records are set and cleared through its management API.
Every process started here is stopped (terminate, then kill) by ``stop()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
CHALLTESTSRV = shutil.which("pebble-challtestsrv") or "/usr/bin/pebble-challtestsrv"


def binaries_present() -> bool:
    return os.access(PEBBLE, os.X_OK) and os.access(CHALLTESTSRV, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: str
    ca_path: Path
    cert_path: Path
    key_path: Path


def make_tls(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CertAutoPilot test lab CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    files = TlsFiles(
        ca_pem=ca_pem,
        ca_path=directory / "ca.pem",
        cert_path=directory / "cert.pem",
        key_path=directory / "key.pem",
    )
    files.ca_path.write_text(ca_pem)
    files.cert_path.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_path.chmod(0o600)
    return files


class _Process:
    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def _wait_until(check: Any, process: _Process, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{what} exited early:\n{process.log()}")
        try:
            if check():
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout} s ({last}):\n{process.log()}")


class ChallTestSrv:
    """pebble-challtestsrv serving DNS on a loopback port; TXT records via its API."""

    def __init__(self, workdir: Path) -> None:
        self.dns_port = free_port()
        self.management_port = free_port()
        self.management_url = f"http://127.0.0.1:{self.management_port}"
        self._http = _session()
        argv = [
            CHALLTESTSRV,
            "-dns01",
            f"127.0.0.1:{self.dns_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            f"127.0.0.1:{self.management_port}",
        ]
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = _Process(
            "challtestsrv", argv, workdir / "challtestsrv.log", dict(os.environ)
        )
        _wait_until(self._ready, self.process, "pebble-challtestsrv")

    def _ready(self) -> bool:
        # Any HTTP answer means the management listener is up.
        self._http.get(self.management_url + "/", timeout=1)
        return True

    def _post(self, path: str, body: dict[str, str]) -> None:
        response = self._http.post(self.management_url + path, json=body, timeout=5)
        response.raise_for_status()

    def set_txt(self, name: str, value: str) -> None:
        """Add a TXT value at ``name`` (several values per name accumulate)."""
        self._post("/set-txt", {"host": name.rstrip(".") + ".", "value": value})

    def clear_txt(self, name: str) -> None:
        self._post("/clear-txt", {"host": name.rstrip(".") + "."})

    def stop(self) -> None:
        self.process.stop()
        self._http.close()


class Pebble:
    """One Pebble CA resolving through ``dns_port``; management API on its own port."""

    def __init__(
        self,
        workdir: Path,
        tls: TlsFiles,
        dns_port: int,
        *,
        eab_keys: dict[str, str] | None = None,
        nonce_reject_percent: int = 0,
        validity_seconds: int | None = None,
        domain_blocklist: list[str] | None = None,
        authz_reuse_percent: int = 0,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.port = free_port()
        self.management_port = free_port()
        self.directory_url = f"https://127.0.0.1:{self.port}/dir"
        self.management_url = f"https://127.0.0.1:{self.management_port}"
        config: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(tls.cert_path),
            "privateKey": str(tls.key_path),
            "httpPort": 5002,
            "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
        }
        if eab_keys:
            config["externalAccountMACKeys"] = eab_keys
        if domain_blocklist:
            config["domainBlocklist"] = domain_blocklist
        if validity_seconds is not None:
            config["certificateValidityPeriod"] = validity_seconds
        config_path = workdir / "pebble-config.json"
        config_path.write_text(json.dumps({"pebble": config}, indent=2))
        env = dict(os.environ)
        env.update(
            {
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_AUTHZREUSE": str(authz_reuse_percent),  # 0 still reuses ~1%
                "PEBBLE_WFE_NONCEREJECT": str(nonce_reject_percent),
            }
        )
        self._http = _session()
        self._http.verify = str(tls.ca_path)
        argv = [PEBBLE, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns_port}"]
        self.process = _Process("pebble", argv, workdir / "pebble.log", env)
        _wait_until(self._ready, self.process, "pebble")

    def _ready(self) -> bool:
        return self._http.get(self.directory_url, timeout=1).status_code == 200

    def management(self, path: str) -> requests.Response:
        response = self._http.get(self.management_url + path, timeout=5)
        response.raise_for_status()
        return response

    def root_pem(self) -> str:
        return self.management("/roots/0").text

    def cert_status(self, serial: int) -> dict[str, Any]:
        data: dict[str, Any] = self.management(f"/cert-status-by-serial/{serial:x}").json()
        return data

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()
        self._http.close()
