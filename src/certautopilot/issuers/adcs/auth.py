"""NTLM and Kerberos (Negotiate) for httpx on pyspnego, with TLS channel binding.

IIS servers hardened against NTLM relay ("Extended Protection for Authentication") refuse
an NTLM or Kerberos answer that does not carry the TLS channel's binding: the
``tls-server-end-point`` hash of the server certificate this very connection received
(RFC 5929). ``httpx-ntlm`` does not send it; this does, reading the certificate from the
connection that answered 401, so the binding always matches the TLS session in use.

NTLM authenticates a *connection*: the handshake (401 → negotiate → 401 challenge →
authenticate) must stay on one keep-alive connection. httpx reuses the connection when the
client's pool holds one per origin; :class:`~certautopilot.issuers.adcs.client.AdcsClient`
sets ``max_connections=1`` so it always does.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Generator
from typing import Literal

import httpx
import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from spnego.channel_bindings import GssChannelBindings

Mechanism = Literal["ntlm", "kerberos"]
MAX_ROUNDS = 4  # NTLM needs 2 legs, Kerberos 1 (2 with mutual auth)

_SCHEME = re.compile(r"^\s*([A-Za-z0-9_-]+)(?:\s+(.*?))?\s*$")
_TOKEN = re.compile(r"^[A-Za-z0-9+/]+=*$")


def tls_server_end_point(cert_der: bytes) -> bytes:
    """The RFC 5929 ``tls-server-end-point`` binding value of a server certificate.

    The hash is the certificate's signature hash, SHA-256 when that is MD5 or SHA-1.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return b"tls-server-end-point:" + digest.finalize()


def channel_bindings(cert_der: bytes) -> GssChannelBindings:
    return GssChannelBindings(application_data=tls_server_end_point(cert_der))


def offered(response: httpx.Response) -> dict[str, str | None]:
    """The schemes a 401 offers, lower-cased, each with its token (if any)."""
    schemes: dict[str, str | None] = {}
    for value in response.headers.get_list("www-authenticate"):
        for part in value.split(","):
            found = _SCHEME.match(part)
            if found:
                rest = found.group(2)
                token = rest if rest and _TOKEN.match(rest) else None
                schemes.setdefault(found.group(1).lower(), token)
    return schemes


def peer_certificate(response: httpx.Response) -> bytes | None:
    """DER of the certificate the server sent on the connection of ``response``."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    # httpcore hands out ssl.SSLSocket/SSLObject, or the C-level ``_ssl._SSLSocket``
    getpeercert = getattr(stream.get_extra_info("ssl_object"), "getpeercert", None)
    if getpeercert is None:
        return None
    der = getpeercert(True)
    return der if isinstance(der, bytes) else None


class SpnegoAuth(httpx.Auth):
    """httpx authentication by NTLM or Kerberos through pyspnego.

    ``username``/``password`` may be None for Kerberos: the machine's ticket cache or
    keytab is used then. ``send_channel_binding=False`` exists for tests that show a
    hardened server refusing a client without it.
    """

    def __init__(
        self,
        mechanism: Mechanism,
        username: str | None,
        password: str | None,
        *,
        service: str = "HTTP",
        send_channel_binding: bool = True,
    ) -> None:
        self.mechanism = mechanism
        self.username = username
        self.password = password
        self.service = service
        self.send_channel_binding = send_channel_binding

    def _scheme(self, schemes: dict[str, str | None]) -> tuple[str, str] | None:
        """(header scheme, pyspnego protocol) for what the server offers."""
        if self.mechanism == "ntlm":
            if "ntlm" in schemes:
                return "NTLM", "ntlm"
            if "negotiate" in schemes:
                return "Negotiate", "negotiate"
            return None
        if "negotiate" in schemes:
            return "Negotiate", "kerberos"
        if "kerberos" in schemes:
            return "Kerberos", "kerberos"
        return None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        chosen = self._scheme(offered(response))
        if chosen is None:
            return
        scheme, protocol = chosen
        cert_der = peer_certificate(response) if self.send_channel_binding else None
        context = spnego.client(
            self.username,
            self.password,
            hostname=request.url.host,
            service=self.service,
            channel_bindings=channel_bindings(cert_der) if cert_der else None,
            protocol=protocol,
        )
        token = context.step()
        for _ in range(MAX_ROUNDS):
            if token is None:
                return
            request.headers["Authorization"] = f"{scheme} {base64.b64encode(token).decode()}"
            response = yield request
            answer = offered(response).get(scheme.lower())
            if response.status_code != 401:
                if answer and not context.complete:
                    context.step(base64.b64decode(answer))  # Kerberos mutual authentication
                return
            if not answer or context.complete:
                return  # refused: the caller sees the 401
            token = context.step(base64.b64decode(answer))
