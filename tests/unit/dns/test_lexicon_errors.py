"""A hosted-DNS API that echoes the credential back (raw or URL-encoded) never gets it into
the service's error message (they reach the timeline and 422 answers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import pytest

from certautopilot.dns.providers.lexicon import providers
from certautopilot.errors import DNSError

TOKEN = "tok+en/with=odd chars-123"


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        key = self.headers.get("X-API-Key", "")
        body = f"denied key={key} url={quote(key, safe='')} form={quote_plus(key)}".encode()
        self.send_response(403)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_echoed_token_is_scrubbed_in_every_form(echo_server: str) -> None:
    cls = next(c for c in providers() if c.name == "powerdns")
    provider = cls(cls.config_model(pdns_server=echo_server, auth_token=TOKEN))
    with pytest.raises(DNSError) as raised:
        provider.list_txt("example.test", "_acme-challenge.example.test")
    message = str(raised.value)
    assert "denied key=" in message  # the provider's own words are kept
    for form in (TOKEN, quote(TOKEN, safe=""), quote_plus(TOKEN)):
        assert form not in message
