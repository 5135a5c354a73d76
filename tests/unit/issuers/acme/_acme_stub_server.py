"""A scripted HTTP server speaking just enough ACME to drive the client's failure paths.

Pebble cannot be told to answer 429 or 503, drop a connection, or send ``Retry-After``;
this stub can. Each path has a queue of scripted replies (the last one repeats); every
reply carries a fresh ``Replay-Nonce`` unless told otherwise, and every request is
recorded with the nonce, URL and ``kid`` of its JWS protected header.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text, None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    nonce: bool = True


@dataclass
class Seen:
    method: str
    path: str
    nonce: str | None = None
    url: str | None = None
    kid: str | None = None
    jwk: bool = False
    payload: bytes | None = None


def problem(
    code: str, detail: str, status: int = 400, headers: dict[str, str] | None = None, **extra: Any
) -> Reply:
    body = {"type": f"urn:ietf:params:acme:error:{code}", "detail": detail, "status": status}
    body.update(extra)
    return Reply(status, body, dict(headers or {}), content_type="application/problem+json")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StubCA:
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.directory_url = self.base + "/dir"
        self.seen: list[Seen] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._nonces = itertools.count(1)
        self.issued_nonces: list[str] = []
        self.script(
            "/dir",
            Reply(
                body={
                    "newNonce": self.base + "/nonce",
                    "newAccount": self.base + "/acct",
                    "newOrder": self.base + "/order",
                    "revokeCert": self.base + "/revoke",
                    "keyChange": self.base + "/key-change",
                    "meta": {"termsOfService": self.base + "/tos", "profiles": {"classic": "x"}},
                },
                nonce=False,
            ),
        )
        self.script("/nonce", Reply(200))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[path] = list(replies)

    def requests_to(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.path == path and (method is None or s.method == method)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, path: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(path)
            if not queue:
                return Reply(404, {"type": "about:blank", "detail": f"no script for {path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _new_nonce(self) -> str:
        nonce = base64.urlsafe_b64encode(f"nonce-{next(self._nonces)}".encode()).decode()
        nonce = nonce.rstrip("=")
        self.issued_nonces.append(nonce)
        return nonce

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self) -> None:
                seen = Seen(self.command, self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    jobj = json.loads(self.rfile.read(length))
                    protected = json.loads(_b64d(jobj["protected"]))
                    seen.nonce = protected.get("nonce")
                    seen.url = protected.get("url")
                    seen.kid = protected.get("kid")
                    seen.jwk = "jwk" in protected
                    seen.payload = _b64d(jobj["payload"])
                with stub._lock:
                    stub.seen.append(seen)

            def _answer(self) -> None:
                self._record()
                reply = stub._next(self.path)
                data = b""
                content_type = reply.content_type
                if isinstance(reply.body, dict | list):
                    data = json.dumps(reply.body).encode()
                    content_type = content_type or "application/json"
                elif isinstance(reply.body, str):
                    data = reply.body.encode()
                    content_type = content_type or "text/plain"
                self.send_response(reply.status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                if reply.nonce:
                    self.send_header("Replay-Nonce", stub._new_nonce())
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer
            do_HEAD = _answer

        return Handler


@contextmanager
def stub_ca() -> Iterator[StubCA]:
    ca = StubCA()
    try:
        yield ca
    finally:
        ca.stop()
