"""A client of AD CS Web Enrollment (``/certsrv``) over httpx.

Every call goes through one :class:`AdcsSession` (one keep-alive connection, so an NTLM
handshake authenticates it once); every failure leaves as a ``certautopilot.errors`` class,
with a ``problem_type`` naming what failed (TLS, credentials, an unexpected page, …), so
callers and the API can say it plainly. Page parsing lives in :mod:`.pages`.
"""

from __future__ import annotations

import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import spnego.exceptions
from cryptography import x509

from certautopilot.errors import DestinationRefused, IssuerError, TransientIssuerError
from certautopilot.issuers.adcs import pages
from certautopilot.issuers.adcs.auth import SpnegoAuth
from certautopilot.netguard import REFUSED_PROBLEM
from certautopilot.outbound import guarded_transport

AuthKind = Literal["basic", "ntlm", "kerberos", "client_cert"]
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; rv:11.0) like Gecko CertAutoPilot"
)
MAX_BODY = 2 * 1024 * 1024
MAX_SECONDS = 90.0  # one exchange, however slowly the bytes trickle in
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

PT_TLS = "urn:certautopilot:adcs:tls"
PT_UNREACHABLE = "urn:certautopilot:adcs:unreachable"
PT_UNAUTHORIZED = "urn:certautopilot:adcs:unauthorized"
PT_FORBIDDEN = "urn:certautopilot:adcs:forbidden"
PT_KERBEROS = "urn:certautopilot:adcs:kerberos-unavailable"
PT_UNEXPECTED = "urn:certautopilot:adcs:unexpected-page"
PT_DENIED = "urn:certautopilot:adcs:denied"
PT_UNKNOWN_TEMPLATE = "urn:certautopilot:adcs:unknown-template"
PT_NOT_FOUND = "urn:certautopilot:adcs:unknown-request"
PT_REFUSED = REFUSED_PROBLEM  # the SSRF guard refused the address


@dataclass(frozen=True)
class AdcsSettings:
    """Where and how to talk to the CA. Holds credentials: never pickle or log it."""

    url: str
    auth: AuthKind
    username: str | None = None
    password: str | None = None
    client_cert_pem: str | None = None
    client_key_pem: str | None = None
    ca_bundle_pem: str | None = None
    send_channel_binding: bool = True

    def __repr__(self) -> str:
        return f"AdcsSettings(url={self.url!r}, auth={self.auth!r}, username={self.username!r})"

    @property
    def who(self) -> str:
        if self.auth == "client_cert":
            return "the client certificate"
        if self.auth == "kerberos" and not self.username:
            return "the machine's Kerberos ticket"
        return repr(self.username)


@dataclass(frozen=True)
class Issued:
    request_id: int
    certificate: x509.Certificate


def ssl_context(settings: AdcsSettings) -> ssl.SSLContext:
    try:
        context = (
            ssl.create_default_context(cadata=settings.ca_bundle_pem)
            if settings.ca_bundle_pem
            else ssl.create_default_context()
        )
    except ssl.SSLError as exc:
        raise IssuerError(f"TLS: the CA bundle does not load: {exc}", PT_TLS) from exc
    if settings.auth == "client_cert":
        if not settings.client_cert_pem or not settings.client_key_pem:
            raise IssuerError("client certificate authentication needs a certificate and key")
        with tempfile.TemporaryDirectory(prefix="cap-adcs-") as tmp:
            cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert_file.write_text(settings.client_cert_pem)
            key_file.touch(0o600)
            key_file.write_text(settings.client_key_pem)
            try:
                context.load_cert_chain(cert_file, key_file)
            except ssl.SSLError as exc:
                raise IssuerError(
                    f"TLS: the client certificate and key do not load together: {exc}", PT_TLS
                ) from exc
    return context


def _auth(settings: AdcsSettings) -> httpx.Auth | None:
    if settings.auth == "basic":
        return httpx.BasicAuth(settings.username or "", settings.password or "")
    if settings.auth in ("ntlm", "kerberos"):
        return SpnegoAuth(
            "ntlm" if settings.auth == "ntlm" else "kerberos",
            settings.username,
            settings.password,
            send_channel_binding=settings.send_channel_binding,
        )
    return None


class AdcsClient:
    def __init__(self, settings: AdcsSettings) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self._ssl = ssl_context(settings)

    @contextmanager
    def session(self) -> Iterator[AdcsSession]:
        http = httpx.Client(
            verify=self._ssl,
            auth=_auth(self.settings),
            headers={"User-Agent": USER_AGENT},
            timeout=TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
            trust_env=False,
            # Connects only to an address the SSRF guard checked when the socket opens.
            transport=guarded_transport(
                verify=self._ssl,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            ),
        )
        try:
            yield AdcsSession(self, http)
        finally:
            http.close()


class AdcsSession:
    """Calls on one connection. Each method maps one certsrv exchange."""

    def __init__(self, client: AdcsClient, http: httpx.Client) -> None:
        self.client = client
        self.settings = client.settings
        self.http = http

    # -- the exchange, with every failure translated ------------------------------------
    def _call(
        self,
        method: str,
        page: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[str, bytes]:
        url = f"{self.client.base}/{page}"
        try:
            request = self.http.build_request(method, url, params=params, data=data)
            response = self.http.send(request, stream=True)
            try:
                body = _read_capped(response)
            finally:
                response.close()
        except DestinationRefused as exc:
            raise IssuerError(exc.detail, PT_REFUSED) from exc
        except httpx.TimeoutException as exc:
            raise TransientIssuerError(
                f"the CA at {self.client.base} did not answer in time ({type(exc).__name__})",
                PT_UNREACHABLE,
            ) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc) from exc
        except ImportError as exc:  # pyspnego without gssapi, asked for Kerberos
            raise IssuerError(
                "Kerberos needs the 'gssapi' Python package (pip install "
                "'certautopilot[kerberos]'), the system's Kerberos library and a ticket "
                f"(kinit) or keytab (KRB5_CLIENT_KTNAME) on the worker: {exc}",
                PT_KERBEROS,
            ) from exc
        except spnego.exceptions.SpnegoError as exc:
            raise IssuerError(
                f"{self.settings.auth} authentication as {self.settings.who} failed: {exc}",
                PT_UNAUTHORIZED,
            ) from exc
        except ValueError as exc:  # e.g. a server token that is not base64
            raise IssuerError(
                f"{self.settings.auth} authentication: the CA's answer could not be read: {exc}",
                PT_UNAUTHORIZED,
            ) from exc
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        status = response.status_code
        if status == 401:
            raise IssuerError(
                f"401 Unauthorized: the CA refused {self.settings.auth} authentication as "
                f"{self.settings.who}"
                + (
                    " (wrong user name or password, or the server requires channel binding)"
                    if self.settings.auth == "ntlm"
                    else ""
                ),
                PT_UNAUTHORIZED,
            )
        if status == 403:
            raise IssuerError(
                f"403 Forbidden from {page}: {pages.excerpt(body.decode('utf-8', 'replace'))}",
                PT_FORBIDDEN,
            )
        if status == 429 or status >= 500:
            raise TransientIssuerError(
                f"the CA answered {status} on {page}: "
                f"{pages.excerpt(body.decode('utf-8', 'replace'), 150)}",
                PT_UNREACHABLE,
            )
        if status != 200:
            raise IssuerError(
                f"the CA answered {status} on {page} (is {self.client.base} the Web "
                f"Enrollment URL, ending in /certsrv?): "
                f"{pages.excerpt(body.decode('utf-8', 'replace'), 150)}",
                PT_UNEXPECTED,
            )
        return content_type, body

    def _text(self, method: str, page: str, *, data: dict[str, str] | None = None) -> str:
        _, body = self._call(method, page, data=data)
        return body.decode("utf-8", "replace")

    # -- what the service needs ---------------------------------------------------------
    def home(self) -> None:
        """Checks TLS, credentials and that this is a Web Enrollment site."""
        page = self._text("GET", "")
        if not pages.looks_like_certsrv(page):
            raise IssuerError(
                f"{self.client.base} does not look like AD CS Web Enrollment: "
                f"{pages.excerpt(page, 150)}",
                PT_UNEXPECTED,
            )

    def templates(self) -> list[str] | None:
        """Templates the caller may enroll in, as the advanced request page lists them."""
        return pages.parse_templates(self._text("GET", "certrqxt.asp"))

    def submit(self, csr_pem: str, template: str) -> pages.Submission:
        page = self._text(
            "POST",
            "certfnsh.asp",
            data={
                "Mode": "newreq",
                "CertRequest": csr_pem,
                "CertAttrib": f"CertificateTemplate:{template}\r\n",
                "FriendlyType": "Saved-Request Certificate",
                "TargetStoreFlags": "0",
                "SaveCert": "yes",
            },
        )
        return pages.parse_submission(page)

    def fetch(self, request_id: int) -> Issued | pages.RequestStatus:
        """The issued certificate, or what the CA says about the request instead."""
        content_type, body = self._call(
            "GET", "certnew.cer", params={"ReqID": str(request_id), "Enc": "b64"}
        )
        if content_type == "text/html" or body.lstrip()[:1] == b"<":
            return pages.parse_request_status(body.decode("utf-8", "replace"))
        try:
            return Issued(request_id, pages.decode_certificate(body))
        except pages.PageError as exc:
            raise IssuerError(
                f"certnew.cer for request {request_id} ({content_type or 'no content type'}) "
                f"held no certificate: {exc}",
                PT_UNEXPECTED,
            ) from exc

    def ca_chain(self) -> list[x509.Certificate]:
        """The CA's current chain (``certcarc.asp`` for the renewal, then ``certnew.p7b``)."""
        renewals = pages.parse_renewals(self._text("GET", "certcarc.asp"))
        _, body = self._call(
            "GET",
            "certnew.p7b",
            params={"ReqID": "CACert", "Renewal": str(renewals or 0), "Enc": "b64"},
        )
        try:
            return pages.decode_pkcs7_chain(body)
        except pages.PageError as exc:
            raise IssuerError(
                f"certnew.p7b held no CA chain: {exc}: "
                f"{pages.excerpt(body.decode('utf-8', 'replace'), 150)}",
                PT_UNEXPECTED,
            ) from exc


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    started = time.monotonic()
    for chunk in response.iter_bytes():
        if time.monotonic() - started > MAX_SECONDS:
            raise TransientIssuerError(
                f"the CA took over {MAX_SECONDS:.0f} s to send {response.request.url.path}",
                PT_UNREACHABLE,
            )
        size += len(chunk)
        if size > MAX_BODY:
            raise IssuerError(
                f"the CA sent more than {MAX_BODY} bytes for {response.request.url.path}",
                PT_UNEXPECTED,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _transport_error(url: str, exc: httpx.HTTPError) -> IssuerError:
    """TLS failures are final (a retry will not fix trust); the rest is worth retrying."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return IssuerError(
                f"TLS: the CA's server certificate at {url} is not trusted "
                f"({cause.verify_message}); give the CA bundle that issued it in ca_bundle_pem",
                PT_TLS,
            )
        if isinstance(cause, ssl.SSLError):
            return IssuerError(
                f"TLS with {url} failed: {cause.reason or cause}"
                + (
                    " (the server refused the client certificate)"
                    if "ALERT" in str(cause) or "alert" in str(cause)
                    else ""
                ),
                PT_TLS,
            )
        cause = cause.__cause__ or cause.__context__
    return TransientIssuerError(f"cannot talk to the CA at {url}: {exc}", PT_UNREACHABLE)
