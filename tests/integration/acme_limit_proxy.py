"""A small HTTPS proxy in front of Pebble that can answer ``newOrder`` with 429 + Retry-After.

It keeps the client's ``Host`` header, so Pebble builds every URL (directory, orders, nonces,
the JWS ``url`` it expects) with the proxy's address and the whole conversation goes through
it. ``limited`` switches the 429 answers on; ``orders`` counts newOrder POSTs that reached it,
``revocations`` the revokeCert POSTs; ``created`` lists the orders the CA created, in order,
as (order URL, names asked for).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}


class LimitProxy:
    def __init__(self, pebble_port: int, cert: Path, key: Path, retry_after: int = 3600) -> None:
        self.pebble_port = pebble_port
        self.retry_after = retry_after
        self.limited = False
        self.orders = 0
        self.refused = 0
        self.revocations = 0
        self.created: list[tuple[str, tuple[str, ...]]] = []
        self.refuse_revocations = False
        self._count = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _problem(
                self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None
            ) -> None:
                kind = f"urn:ietf:params:acme:error:{kind}"
                problem = json.dumps({"type": kind, "detail": detail, "status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(problem)))
                self.end_headers()
                self.wfile.write(problem)

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "POST" and self.path.endswith("revoke-cert"):
                    with proxy._count:
                        proxy.revocations += 1
                    if proxy.refuse_revocations:
                        self._problem(403, "unauthorized", "revocation refused (test proxy)")
                        return
                if self.command == "POST" and self.path.endswith("order-plz"):
                    with proxy._count:
                        proxy.orders += 1
                    if proxy.limited:
                        proxy.refused += 1
                        self._problem(
                            429,
                            "rateLimited",
                            "too many new orders (test proxy)",
                            {"Retry-After": str(proxy.retry_after)},
                        )
                        return
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                upstream = http.client.HTTPSConnection(
                    "127.0.0.1", proxy.pebble_port, context=context, timeout=30
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                if self.path.endswith("order-plz") and response.status == 201:
                    with proxy._count:
                        proxy.created.append((response.getheader("Location") or "", _names(body)))
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _names(jws: bytes) -> tuple[str, ...]:
    """The identifiers a newOrder JWS asks for (its payload, RFC 8555 section 7.4)."""
    payload = json.loads(jws)["payload"]
    order = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return tuple(sorted(i["value"] for i in order["identifiers"]))
