"""A test double of Microsoft AD CS Web Enrollment (the ``/certsrv`` pages).

AD CS cannot run on these machines, so tests and the demo talk to this: a real HTTPS server
(stdlib ``http.server``, HTTP/1.1 keep-alive) that serves the pages non-Windows clients use
(``reference/adcs-web-enrollment.md``), backed by a real two-level CA built with
``cryptography`` (a root, an issuing CA that signs the server's TLS certificate and every
issued certificate). What it reproduces:

- ``certfnsh.asp`` (``Mode=newreq`` and ``Mode=chkpnd``), ``certnew.cer`` (``Enc=b64`` PEM
  with CRLF line ends, ``Enc=bin`` DER, or a 200 HTML status page), ``certcarc.asp``
  (``var nRenewals``), ``certnew.p7b`` (the CA chain as PKCS#7), ``certrqxt.asp`` (the
  templates as ``<Option Value="E;<name>;…">``);
- templates that issue at once, templates that wait for a CA manager (approved or denied
  with :meth:`AdcsDouble.approve` / :meth:`AdcsDouble.deny`, or the control endpoints
  ``POST /certsrv/_double/approve?ReqID=N`` and ``…/deny?ReqID=N`` with the header
  ``X-Double-Control: <control_token>``); any other template is denied with
  ``Denied by Policy Module 0x80094800``;
- issued certificates copy the CSR's subject and SANs and carry the template name extension
  (OID 1.3.6.1.4.1.311.20.2);
- authentication: Basic; NTLM (``WWW-Authenticate: NTLM`` and ``Negotiate``) through a
  pyspnego acceptor, per connection as in IIS, optionally *requiring* channel binding
  (``tls-server-end-point`` of the server certificate, as with Extended Protection
  "Required"; the binding is derived by the double's own ``channel_binding`` module, not the
  client's); TLS client certificates issued by the double's root.

It is a double, not a CA: requests live in memory, and the pages are rebuilt from what
clients parse, so real servers (and non-English ones) may word them differently.
Its CA lives in ``adcs_double_ca``, its pages in ``adcs_double_pages``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import secrets
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from spnego.channel_bindings import GssChannelBindings

from certautopilot_lab import adcs_double_pages as pages
from certautopilot_lab.adcs_double_ca import (
    TEMPLATE_NAME_OID,
    DoubleCA,
    pem,
    write_file,
)
from certautopilot_lab.channel_binding import tls_server_end_point

__all__ = ["TEMPLATE_NAME_OID", "AdcsDouble", "DoubleCA", "DoubleRequest", "free_port"]

TemplateMode = Literal["issue", "pending"]
AuthMode = Literal["basic", "ntlm", "client_cert"]
DEFAULT_TEMPLATES: dict[str, TemplateMode] = {"WebServer": "issue", "WebServerApproval": "pending"}
DEFAULT_USERS = {"CORP\\svc-pki": "Corp-Pass-1"}
FIRST_REQUEST_ID = 1000
_ENV_LOCK = threading.Lock()  # pyspnego's NTLM acceptor reads NTLM_USER_FILE from os.environ


@dataclass
class DoubleRequest:
    """One request in the CA database."""

    id: int
    template: str
    requester: str
    status: Literal["issued", "pending", "denied"]
    disposition: str
    code: str = "0x0"
    csr_pem: str = ""
    certificate: x509.Certificate | None = None


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    ntlm_handshakes: int = 0
    refused_bindings: int = 0
    paths: list[str] = field(default_factory=list)


# -- the server ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    double: AdcsDouble

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread (a slow client blocks nobody)."""
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.double.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that drops its connection is not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 15
    server: _Server

    # per connection, like IIS: NTLM authenticates the connection
    user: str | None = None
    negotiation: Any = None
    negotiation_scheme: str = ""
    counted: bool = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def double(self) -> AdcsDouble:
        return self.server.double

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing ----------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        if not self.counted:
            self.counted = True
            with self.double.lock:
                self.double.stats.connections += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.double.lock:
            self.double.stats.requests += 1
            self.double.stats.paths.append(f"{method} {url.path}")
        path = url.path.rstrip("/").lower() or "/"
        if path.startswith("/certsrv/_double/") and method == "POST":
            self._control(path.rsplit("/", 1)[-1], query)
            return
        user = self._authenticate()
        if user is None:
            return
        form = (
            {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            if method == "POST"
            else {}
        )
        self._route(method, path, query, form, user)

    def _send(
        self,
        status: int,
        body: bytes | str,
        content_type: str = "text/html",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _challenge(self, token: str | None = None, scheme: str = "") -> None:
        if token is not None:
            headers = [("WWW-Authenticate", f"{scheme} {token}")]
        else:
            headers = []
            if "ntlm" in self.double.auth_modes:
                headers += [("WWW-Authenticate", s) for s in self.double.windows_schemes]
            if "basic" in self.double.auth_modes:
                headers.append(("WWW-Authenticate", f'Basic realm="{self.double.host}"'))
        self._send(
            401,
            "<h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1>",
            headers=headers,
        )

    # -- authentication ----------------------------------------------------------------
    def _authenticate(self) -> str | None:
        double = self.double
        if self.user is not None:
            return self.user
        if "client_cert" in double.auth_modes:
            peer = self.connection.getpeercert(binary_form=True)
            if peer:
                cert = x509.load_der_x509_certificate(peer)
                cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                self.user = str(cn[0].value) if cn else "client-certificate"
                return self.user
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "basic" in double.auth_modes:
            try:
                name, _, password = base64.b64decode(credentials).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            if double.check_password(name, password):
                return name  # Basic authenticates one request, not the connection
            self._challenge()
            return None
        offered = {s.lower() for s in double.windows_schemes}
        if scheme in offered and "ntlm" in double.auth_modes:
            return self._ntlm(scheme, credentials.strip())
        if double.auth_modes == {"client_cert"}:
            self._send(
                403,
                "<h1>403 - Forbidden: Access is denied.</h1><p>HTTP Error 403.7 - "
                "The page you are trying to access requires your browser to have a Secure "
                "Sockets Layer (SSL) client certificate that the Web server recognizes.</p>",
            )
            return None
        self._challenge()
        return None

    def _ntlm(self, scheme: str, token_b64: str) -> str | None:
        double = self.double
        try:
            token = base64.b64decode(token_b64)
        except ValueError:
            self._challenge()
            return None
        with _ENV_LOCK:
            os.environ["NTLM_USER_FILE"] = str(double.users_file)
            try:
                if self.negotiation is None or self.negotiation_scheme != scheme:
                    self.negotiation = spnego.server(
                        protocol="ntlm" if scheme == "ntlm" else "negotiate",
                        channel_bindings=double.bindings
                        if double.require_channel_binding
                        else None,
                    )
                    self.negotiation_scheme = scheme
                    with double.lock:
                        double.stats.ntlm_handshakes += 1
                if double.require_channel_binding and _ntlm_bindings_zero(token):
                    raise spnego.exceptions.BadBindingsError(context_msg="no channel binding")
                answer = self.negotiation.step(token)
            except spnego.exceptions.SpnegoError as exc:
                self.negotiation = None
                if isinstance(exc, spnego.exceptions.BadBindingsError):
                    with double.lock:
                        double.stats.refused_bindings += 1
                self._challenge()
                return None
        header = "NTLM" if scheme == "ntlm" else "Negotiate"
        if not self.negotiation.complete:
            self._challenge(base64.b64encode(answer or b"").decode(), header)
            return None
        self.user = str(self.negotiation.client_principal or "")
        self.negotiation = None
        return self.user

    # -- control (the CA manager's hands) ------------------------------------------------
    def _control(self, action: str, query: dict[str, str]) -> None:
        if not secrets.compare_digest(
            self.headers.get("X-Double-Control", ""), self.double.control_token
        ):
            self._send(403, "control token required", "text/plain")
            return
        try:
            request_id = int(query.get("reqid", query.get("ReqID", "")))
            if action == "approve":
                self.double.approve(request_id)
            elif action == "deny":
                self.double.deny(request_id, query.get("message") or None)
            else:
                self._send(404, "unknown control action", "text/plain")
                return
        except (KeyError, ValueError) as exc:
            self._send(400, f"{exc}", "text/plain")
            return
        self._send(200, "ok", "text/plain")

    # -- the certsrv pages ---------------------------------------------------------------
    def _route(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], user: str
    ) -> None:
        double = self.double
        ca = double.ca_name
        lower_query = {k.lower(): v for k, v in query.items()}
        if path in ("/certsrv", "/certsrv/default.asp") and method == "GET":
            self._send(200, pages.home_page(ca))
        elif path == "/certsrv/certrqxt.asp" and method == "GET":
            self._send(200, pages.templates_page(ca, list(double.templates)))
        elif path == "/certsrv/certcarc.asp" and method == "GET":
            self._send(200, pages.carc_page(ca))
        elif path == "/certsrv/certfnsh.asp" and method == "POST":
            self._submit(form, user)
        elif path == "/certsrv/certnew.cer" and method == "GET":
            self._certificate(lower_query)
        elif path == "/certsrv/certnew.p7b" and method == "GET":
            self._chain(lower_query)
        else:
            self._send(404, "<h1>404 - File or directory not found.</h1>")

    def _submit(self, form: dict[str, str], user: str) -> None:
        double = self.double
        mode = form.get("Mode", "").lower()
        if mode == "chkpnd":
            try:
                request = double.requests[int(form.get("ReqID", ""))]
            except (KeyError, ValueError):
                self._send(
                    200,
                    pages.status_page(
                        double.ca_name,
                        "Error",
                        "The requested property value is empty. 0x8009000f (-2146893809 "
                        "NTE_BAD_KEY_STATE)",
                    ),
                )
                return
            self._send(200, double.submission_page(request))
            return
        if mode != "newreq":
            self._send(200, pages.status_page(double.ca_name, "Error", "Unknown Mode. 0x80070057"))
            return
        template = ""
        for line in form.get("CertAttrib", "").replace("\r", "\n").split("\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "certificatetemplate":
                template = value.strip()
        if double.foreign_page is not None:  # e.g. a proxy's sign-in page in front of IIS
            self._send(200, double.foreign_page)
            return
        request = double.submit(form.get("CertRequest", ""), template, user)
        self._send(200, double.submission_page(request))

    def _certificate(self, query: dict[str, str]) -> None:
        double = self.double
        encoding = query.get("enc", "b64").lower()
        rid = query.get("reqid", "")
        if rid.lower() == "cacert":
            self._send_cert(double.ca.issuing, encoding)
            return
        try:
            request = double.requests[int(rid)]
        except (KeyError, ValueError):
            self._send(
                200,
                pages.status_page(
                    double.ca_name,
                    "Error retrieving unknown request",
                    "The requested property value is empty. 0x8009000f",
                ),
            )
            return
        if request.certificate is None:
            last = (
                "The operation completed successfully. 0x0 (WIN32: 0 ERROR_SUCCESS)"
                if request.status == "pending"
                else f"The request was denied. {request.code}"
            )
            self._send(200, pages.status_page(double.ca_name, request.disposition, last))
            return
        self._send_cert(request.certificate, encoding)

    def _send_cert(self, cert: x509.Certificate, encoding: str) -> None:
        if encoding == "bin":
            body = cert.public_bytes(serialization.Encoding.DER)
        else:
            body = pem(cert).replace("\n", "\r\n").encode()
        self._send(
            200,
            body,
            "application/pkix-cert",
            [("Content-Disposition", "attachment; filename=certnew.cer")],
        )

    def _chain(self, query: dict[str, str]) -> None:
        double = self.double
        rid = query.get("reqid", "")
        certs = [double.ca.issuing, double.ca.root]
        if rid.lower() != "cacert":
            try:
                request = double.requests[int(rid)]
            except (KeyError, ValueError):
                self._send(404, "<h1>404</h1>")
                return
            if request.certificate is not None:
                certs.insert(0, request.certificate)
        der = pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
        if query.get("enc", "bin").lower() == "b64":
            # Labelled CERTIFICATE though it holds PKCS#7: clients must not trust the label.
            b64 = base64.encodebytes(der).decode().replace("\n", "\r\n")
            body = f"-----BEGIN CERTIFICATE-----\r\n{b64}-----END CERTIFICATE-----\r\n".encode()
        else:
            body = der
        self._send(200, body, "application/x-pkcs7-certificates")


def _ntlm_bindings_zero(token: bytes) -> bool:
    """True when a raw NTLM AUTHENTICATE carries an all-zero channel binding (= none)."""
    if not token.startswith(b"NTLMSSP\x00") or len(token) < 12 or token[8] != 3:
        return False
    from spnego._ntlm_raw.messages import Authenticate, AvId, NTClientChallengeV2

    try:
        auth = Authenticate.unpack(token)
        response = auth.nt_challenge_response or b""
        if len(response) <= 24:
            return True
        pairs = NTClientChallengeV2.unpack(response[16:]).av_pairs
    except Exception:  # a malformed token: let the acceptor refuse it
        return False
    value = pairs.get(AvId.channel_bindings)
    return value is None or value == b"\x00" * 16


class AdcsDouble:
    """The certsrv double. ``start()`` serves on ``host:port`` (0 = a free port)."""

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_modes: set[AuthMode] | frozenset[AuthMode] = frozenset({"basic", "ntlm"}),
        require_channel_binding: bool = False,
        windows_schemes: tuple[str, ...] = ("Negotiate", "NTLM"),
        users: dict[str, str] | None = None,
        templates: dict[str, TemplateMode] | None = None,
        validity_days: int = 365,
        ca_name: str = "CORP-ISSUING-CA",
    ) -> None:
        self.host = host
        self.port = port
        self.auth_modes = set(auth_modes)
        self.require_channel_binding = require_channel_binding
        self.windows_schemes = windows_schemes  # what IIS's Windows authentication offers
        self.users = dict(users or DEFAULT_USERS)
        self.templates: dict[str, TemplateMode] = dict(templates or DEFAULT_TEMPLATES)
        self.validity_days = validity_days
        self.foreign_page: str | None = None  # set: certfnsh.asp answers with this page
        self.ca_name = ca_name
        self.control_token = secrets.token_urlsafe(16)
        self.lock = threading.Lock()
        self.stats = Stats()
        self.requests: dict[int, DoubleRequest] = {}
        self._ids = itertools.count(FIRST_REQUEST_ID)
        self._tmp = tempfile.TemporaryDirectory(prefix="adcs-double-")
        self.dir = base_dir or Path(self._tmp.name)
        self.ca = DoubleCA(base_dir)
        self.server_cert, server_key = self.ca.server_certificate(host)
        # What Extended Protection "Required" expects: the binding of the certificate this
        # server presents, computed here, not with the client's helper (channel_binding.py).
        self.bindings = GssChannelBindings(
            application_data=tls_server_end_point(
                self.server_cert.public_bytes(serialization.Encoding.DER)
            )
        )
        self.users_file = Path(self._tmp.name) / "ntlm-users"
        write_file(
            self.users_file,
            "".join(
                f"{d}:{u}:{p}\n"
                for d, u, p in ((*_split_user(name), pw) for name, pw in self.users.items())
            ).encode(),
            0o600,
        )
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        chain = Path(self._tmp.name) / "server-chain.pem"
        key_file = Path(self._tmp.name) / "server.key"
        write_file(chain, (pem(self.server_cert) + pem(self.ca.issuing)).encode(), 0o600)
        write_file(key_file, server_key, 0o600)
        self.ssl_context.load_cert_chain(chain, key_file)
        if "client_cert" in self.auth_modes:
            self.ssl_context.verify_mode = ssl.CERT_OPTIONAL
            self.ssl_context.load_verify_locations(cadata=pem(self.ca.root) + pem(self.ca.issuing))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> AdcsDouble:
        server = _Server((self.host, self.port), _Handler)
        server.double = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    def __enter__(self) -> AdcsDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/certsrv"

    @property
    def ca_bundle_pem(self) -> str:
        """Trust for the server's TLS certificate (and the issued ones): the root."""
        return pem(self.ca.root)

    def client_certificate(self, user: str = "svc-pki") -> tuple[str, str]:
        return self.ca.client_certificate(user)

    def check_password(self, name: str, password: str) -> bool:
        wanted = {k.lower(): v for k, v in self.users.items()}.get(name.lower())
        return wanted is not None and secrets.compare_digest(wanted, password)

    # -- the CA database -----------------------------------------------------------------------
    def submit(self, csr_pem: str, template: str, requester: str) -> DoubleRequest:
        with self.lock:
            request_id = next(self._ids)
        request = DoubleRequest(request_id, template, requester, "denied", "", csr_pem=csr_pem)
        mode = self.templates.get(template)
        if not template or mode is None:
            request.code = "0x80094800"
            request.disposition = (
                "Denied by Policy Module  0x80094800, The request was not for a certificate "
                "template that is supported by this CA."
            )
        else:
            try:
                csr = x509.load_pem_x509_csr(_normalise_csr(csr_pem))
                if not csr.is_signature_valid:
                    raise ValueError("bad signature")
                request.csr_pem = csr_pem
                if mode == "issue":
                    self._issue(request, csr)
                else:
                    request.status = "pending"
                    request.disposition = "Taken Under Submission"
            except ValueError:
                request.code = "0x80093102"
                request.disposition = (
                    "Error Parsing Request  ASN1 unexpected end of data. 0x80093102 "
                    "(ASN: 258 CRYPT_E_ASN1_EOD)"
                )
        with self.lock:
            self.requests[request.id] = request
        return request

    def _issue(self, request: DoubleRequest, csr: x509.CertificateSigningRequest) -> None:
        try:
            sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = []
        request.certificate = self.ca.sign(
            csr.subject,
            csr.public_key(),
            sans=sans,
            usage=[ExtendedKeyUsageOID.SERVER_AUTH],
            days=self.validity_days,
            template=request.template,
        )
        request.status = "issued"
        request.disposition = "Issued"

    def submission_page(self, request: DoubleRequest) -> str:
        if request.status == "issued":
            return pages.issued_page(self.ca_name, request.id)
        if request.status == "pending":
            return pages.pending_page(self.ca_name, request.id)
        return pages.denied_page(self.ca_name, request.id, request.disposition)

    def pending(self) -> list[int]:
        with self.lock:
            return [r.id for r in self.requests.values() if r.status == "pending"]

    def approve(self, request_id: int) -> None:
        """A CA manager issues a pending request (certutil -resubmit)."""
        request = self.requests[request_id]
        if request.status != "pending":
            raise ValueError(f"request {request_id} is {request.status}, not pending")
        self._issue(request, x509.load_pem_x509_csr(_normalise_csr(request.csr_pem)))

    def deny(self, request_id: int, message: str | None = None) -> None:
        """A CA manager denies a pending request (certutil -deny)."""
        request = self.requests[request_id]
        if request.status != "pending":
            raise ValueError(f"request {request_id} is {request.status}, not pending")
        request.status = "denied"
        request.code = "0x80094014"
        request.disposition = message or (
            "Denied by a CA manager. The request was denied by a certificate manager or CA "
            "administrator. 0x80094014 (-2146877420 CERTSRV_E_ADMIN_DENIED_REQUEST)"
        )


def _split_user(name: str) -> tuple[str, str]:
    domain, sep, user = name.partition("\\")
    return (domain, user) if sep else ("", name)


def _normalise_csr(csr_pem: str) -> bytes:
    text = csr_pem.replace("\r\n", "\n").strip()
    text = text.replace("NEW CERTIFICATE REQUEST", "CERTIFICATE REQUEST")
    return text.encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
