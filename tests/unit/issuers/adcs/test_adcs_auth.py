"""The Kerberos side of SpnegoAuth, without a KDC: a stand-in GSSAPI context checks what
the flow hands pyspnego (protocol, SPN host, channel binding) and what it sends back."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from certautopilot.issuers.adcs import auth as adcs_auth
from certautopilot.issuers.adcs.auth import SpnegoAuth, channel_bindings, offered
from certautopilot_lab.adcs_double import AdcsDouble


class FakeContext:
    """Plays a Kerberos initiator: one token out, then the server's mutual-auth token in."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.complete = False
        self.received: list[bytes] = []

    def step(self, token: bytes | None = None) -> bytes | None:
        if token is None:
            return b"AP-REQ"
        self.received.append(token)
        self.complete = True
        return None


def test_kerberos_flow_sends_negotiate_with_binding_and_reads_mutual_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[FakeContext] = []

    def client(username: Any, password: Any, **kwargs: Any) -> FakeContext:
        made.append(FakeContext(username=username, password=password, **kwargs))
        return made[-1]

    double = AdcsDouble()
    server_der = double.server_cert.public_bytes(serialization.Encoding.DER)
    double.stop()
    monkeypatch.setattr(adcs_auth.spnego, "client", client)
    monkeypatch.setattr(adcs_auth, "peer_certificate", lambda response: server_der)
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization")
        seen.append(header)
        if header is None:
            return httpx.Response(401, headers=[("WWW-Authenticate", "Negotiate")])
        assert header == "Negotiate " + base64.b64encode(b"AP-REQ").decode()
        return httpx.Response(
            200, headers={"WWW-Authenticate": "Negotiate " + base64.b64encode(b"AP-REP").decode()}
        )

    with httpx.Client(
        transport=httpx.MockTransport(handler), auth=SpnegoAuth("kerberos", None, None)
    ) as http:
        assert http.get("https://ca.corp.example/certsrv/").status_code == 200
    assert seen[0] is None and seen[1] is not None
    [context] = made
    assert context.kwargs["protocol"] == "kerberos"
    assert context.kwargs["hostname"] == "ca.corp.example"  # SPN HTTP/ca.corp.example
    assert context.kwargs["service"] == "HTTP"
    assert context.kwargs["username"] is None  # the machine's ticket or keytab
    assert context.kwargs["channel_bindings"].pack() == channel_bindings(server_der).pack()
    assert context.received == [b"AP-REP"]


def test_offered_reads_every_header_and_comma_lists() -> None:
    response = httpx.Response(
        401,
        headers=[
            ("WWW-Authenticate", "Negotiate"),
            ("WWW-Authenticate", "NTLM"),
            ("WWW-Authenticate", 'Basic realm="ca"'),
        ],
    )
    assert set(offered(response)) == {"negotiate", "ntlm", "basic"}
    token = httpx.Response(401, headers={"WWW-Authenticate": "NTLM TlRMTVNTUAACAAAA"})
    assert offered(token) == {"ntlm": "TlRMTVNTUAACAAAA"}
