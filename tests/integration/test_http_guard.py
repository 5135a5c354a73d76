"""Request bodies are bounded and API callers identified before a body is read (#12 item 5).

Against the real HTTP server (uvicorn on a free port) over raw sockets, so a test controls
exactly which bytes are sent: a request that declares a 100 MB body gets its 413 (or 401)
while the client has sent only the headers; a chunked body is cut off at the limit.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from certautopilot.app import create_app
from certautopilot.config import DEFAULT_MAX_BODY_BYTES
from tests.integration.live_server import Live, admin_token, live_server, prepared_settings

LIMIT = 64 * 1024  # the smallest limit the setting allows: quick to exceed in a test
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(
        database_url, tmp_path_factory.mktemp("guard"), env={"MAX_BODY_BYTES": str(LIMIT)}
    ) as server:
        yield server


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 response (Content-Length framed, as every answer here is)."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        body += chunk
    return Answer(status, headers, body)


def connect(live: Live) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=10)


def head(method: str, path: str, **headers: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def send_chunked_until_answered(sock: socket.socket, piece: bytes, most: int) -> tuple[int, bool]:
    """Sends ``piece`` as chunks until the server answers or ``most`` bytes went out; returns
    the bytes sent and whether it answered (the answer is left in the socket)."""
    sent = 0
    sock.setblocking(False)
    try:
        while sent < most:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    return sent, True
            except BlockingIOError:
                pass
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                return sent, True  # the server stopped reading: its answer is waiting
            sent += len(piece)
        sock.sendall(b"0\r\n\r\n")
        return sent, False
    finally:
        sock.setblocking(True)


def test_a_declared_body_over_the_limit_gets_413_before_any_of_it_is_sent(live: Live) -> None:
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/v1/projects",
                Authorization=f"Bearer {live.token}",
                **{"Content-Type": "application/json", "Content-Length": str(HUNDRED_MB)},
            )
        )
        answer = read_answer(sock)  # not one byte of the 100 MB was sent
        assert answer.status == 413
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json() == {
            "type": "about:blank",
            "title": "Request body too large",
            "status": 413,
            "detail": f"the request body is over this server's limit of {LIMIT} bytes",
            "limit": LIMIT,
        }
        assert answer.headers["connection"] == "close" and closed_by_server(sock)


def test_a_client_that_expects_100_continue_is_never_asked_for_the_body(live: Live) -> None:
    with connect(live) as sock:
        sock.sendall(
            head(
                "PUT",
                "/api/v1/projects/x/policy",
                Authorization=f"Bearer {live.token}",
                Expect="100-continue",
                **{"Content-Length": str(LIMIT + 1)},
            )
        )
        answer = read_answer(sock)
        assert answer.status == 413  # and no "100 Continue" came first


def test_the_web_ui_has_the_same_limit(live: Live) -> None:
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/login",
                **{
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Content-Length": str(HUNDRED_MB),
                },
            )
        )
        assert read_answer(sock).status == 413


def test_a_chunked_api_body_is_cut_off_at_the_limit(live: Live) -> None:
    piece = b" " * 8192  # JSON whitespace: a body the parser would read for ever
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/v1/projects",
                Authorization=f"Bearer {live.token}",
                **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            )
        )
        sent, answered = send_chunked_until_answered(sock, piece, most=HUNDRED_MB)
        assert answered, "the server read 100 MB without answering"
        answer = read_answer(sock)
        assert answer.status == 413, answer.body
        assert answer.json()["limit"] == LIMIT
        assert answer.headers["content-type"] == "application/problem+json"
        # It stopped at the limit; what more went out sat in the sockets' buffers.
        assert sent < LIMIT + 8 * 1024 * 1024


def test_a_chunked_web_form_is_cut_off_at_the_limit_with_the_error_page(live: Live) -> None:
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/login",
                **{
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Transfer-Encoding": "chunked",
                },
            )
        )
        _, answered = send_chunked_until_answered(sock, b"a" * 8192, most=HUNDRED_MB)
        assert answered
        answer = read_answer(sock)
        assert answer.status == 413
        assert answer.headers["content-type"].startswith("text/html")
        assert b"Request body too large" in answer.body


def test_a_chunked_body_under_the_limit_is_read(live: Live) -> None:
    slug = f"g-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"slug": slug, "name": "Chunked"}).encode()
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/v1/projects",
                Authorization=f"Bearer {live.token}",
                **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            )
        )
        sock.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        answer = read_answer(sock)
        assert answer.status == 201, answer.body
        assert answer.json()["slug"] == slug


@pytest.mark.parametrize("size", [LIMIT, LIMIT + 1])
def test_the_limit_is_exact(live: Live, size: int) -> None:
    body = json.dumps({"slug": f"e-{uuid.uuid4().hex[:8]}", "name": "x"}).encode()
    body += b" " * (size - len(body))
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/v1/projects",
                Authorization=f"Bearer {live.token}",
                **{"Content-Type": "application/json", "Content-Length": str(size)},
            )
            + body
        )
        answer = read_answer(sock)
    assert answer.status == (413 if size > LIMIT else 201), answer.body


@pytest.mark.parametrize(
    "credential",
    [{}, {"Cookie": "cap_session=anything"}, {"Authorization": "Basic YTpi"}],
    ids=["none", "web-session-cookie", "basic"],
)
def test_an_api_call_without_a_token_gets_401_before_its_body(
    live: Live, credential: dict[str, str]
) -> None:
    with connect(live) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/v1/projects",
                **credential,
                **{"Content-Type": "application/json", "Content-Length": str(HUNDRED_MB)},
            )
        )
        answer = read_answer(sock)  # the 100 MB were never sent
        assert answer.status == 401
        assert answer.json() == {
            "type": "about:blank",
            "title": "Authentication required",
            "status": 401,
            "detail": "send an API token as 'Authorization: Bearer <token>'",
        }
        assert closed_by_server(sock)


def test_a_token_less_get_keeps_its_connection(live: Live) -> None:
    with connect(live) as sock:
        for _ in range(2):  # two answers on one connection
            sock.sendall(head("GET", "/api/v1/projects"))
            answer = read_answer(sock)
            assert answer.status == 401 and "connection" not in answer.headers


# -- the largest valid requests fit the default limit -------------------------------------


def pem(label: str, size: int) -> str:
    """A PEM-shaped text of ``size`` characters (base64 lines of 64, '+' and '/' included)."""
    line = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" + "\n"
    begin, end = f"-----BEGIN {label}-----\n", f"-----END {label}-----\n"
    inner = (line * (size // len(line) + 1))[: size - len(begin) - len(end)]
    return begin + inner + end


def largest_adcs_issuer() -> dict[str, Any]:
    return {
        "name": "n" * 100,
        "kind": "adcs",
        "adcs": {
            "url": "https://ca.example.test/certsrv/" + "x" * 460,
            "templates": ["T" * 100] * 50,
            "auth": "client_cert",
            "client_cert_pem": pem("CERTIFICATE", 100_000),
            "client_key_pem": pem("PRIVATE KEY", 100_000),
            "ca_bundle_pem": pem("CERTIFICATE", 200_000),
        },
    }


def test_the_largest_valid_bodies_fit_the_default_limit() -> None:
    """An AD CS issuer with every PEM field full is the largest request the API and the web
    forms take; as JSON and as a urlencoded form (each '+', '/' and line break escaped) it
    stays under half of the default limit."""
    issuer = largest_adcs_issuer()
    as_json = json.dumps(issuer).encode()
    as_form = urlencode(
        {k: v.replace("\n", "\r\n") for k, v in issuer["adcs"].items() if isinstance(v, str)}
    ).encode()
    assert len(as_json) < DEFAULT_MAX_BODY_BYTES / 2
    assert len(as_form) < DEFAULT_MAX_BODY_BYTES / 2


def test_the_largest_issuer_body_passes_the_default_limit(
    database_url: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    settings = prepared_settings(database_url, tmp_path)
    bearer = {"Authorization": f"Bearer {admin_token(settings)}"}
    slug = f"g-{uuid.uuid4().hex[:8]}"
    with TestClient(create_app(settings)) as client:
        created = client.post("/api/v1/projects", headers=bearer, json={"slug": slug, "name": "L"})
        assert created.status_code == 201, created.text
        response = client.post(
            f"/api/v1/projects/{slug}/issuers", headers=bearer, json=largest_adcs_issuer()
        )
    # Read and validated: the PEM texts are not certificates, so a 422 on one of them.
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"].startswith("adcs."), response.text
