"""Servers for SSRF tests: a listener on a refused address that records every connection,
small HTTP(S) servers answering what a test says, and a throwaway TLS certificate.

The refused listener is real: the guard is proven to keep the service away from it, not
merely to raise. Its socket is non-blocking, so :meth:`RefusedListener.connections` reads
the kernel's accept queue at once: a connection that reached it before the call returned
is counted (the TCP handshake completes in the kernel), and no sleep is needed to see none.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import select
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: An address the tests' allow list (127.0.0.0/8) does not cover, and that is local.
REFUSED_HOST = "::1"


class RefusedListener:
    """A TCP listener on ``[::1]`` (refused by the guard) counting connections to it.

    A thread accepts and closes connections at once, so a client that wrongly got through
    fails fast instead of waiting for a read timeout; :meth:`connections` stops it and then
    drains the accept queue, so a connection made before the call is always counted."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.bind((REFUSED_HOST, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self._seen = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://[{REFUSED_HOST}]:{self.port}"

    def _drain(self) -> None:
        with self._lock:
            while True:
                try:
                    conn, _ = self.sock.accept()
                except (BlockingIOError, OSError):
                    return
                conn.close()
                self._seen += 1

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.sock], [], [], 0.05)
            if readable:
                self._drain()

    def connections(self) -> int:
        """Connections made to the listener so far."""
        self._stop.set()
        self._thread.join()
        self._drain()
        return self._seen

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextlib.contextmanager
def refused_listener() -> Iterator[RefusedListener]:
    listener = RefusedListener()
    try:
        yield listener
    finally:
        listener.close()


@dataclass(frozen=True)
class Tls:
    cert_pem: str
    key_pem: str
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.cert_pem)


def make_tls(directory: Path, *names: str) -> Tls:
    """A self-signed certificate (its own CA) for ``names`` (DNS names or addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_text(cert_pem)
    key_file.write_text(key_pem)
    return Tls(cert_pem, key_pem, cert_file, key_file)


@dataclass
class Seen:
    """One request a :func:`serve` server answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[Seen], Reply]


@dataclass
class Served:
    port: int
    seen: list[Seen] = field(default_factory=list)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    answer: Handler
    record: list[Seen]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.record.append(seen)
        status, headers, payload = self.server.answer(seen)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_HEAD = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(answer: Handler, tls: Tls | None = None) -> Iterator[Served]:
    """An HTTP(S) server on 127.0.0.1 (allowed by the tests' settings) on a free port."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.answer = answer
    served = Served(int(server.server_address[1]))
    server.record = served.seen
    if tls is not None:
        server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def tls_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cap-ssrf-") as tmp:
        yield Path(tmp)
