"""Security headers on every response, over the wire from the real server (#12 item 8).

An API answer, a web page, a static file, error pages (API problem, web error page, the
guard's 413), /docs and its files all carry the same CSP and framing headers; HSTS only
when the request came over https as uvicorn sees it (X-Forwarded-Proto from a trusted proxy).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.live_server import ADMIN, Live, live_server

PASSWORD = "correct horse battery"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(database_url, tmp_path_factory.mktemp("headers"), password=PASSWORD) as s:
        yield s


@pytest.fixture
def signed_in(live: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/login").text
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match
        done = client.post(
            "/login", data={"csrf": match.group(1), "email": ADMIN, "password": PASSWORD}
        )
        assert done.status_code == 303, done.text
        yield client


def assert_hardened(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == CSP, response.url
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in headers  # plain http


def test_every_kind_of_response_carries_the_headers(live: Live, signed_in: httpx.Client) -> None:
    bearer = {"Authorization": f"Bearer {live.token}"}
    api = signed_in.get("/api/v1/projects", headers=bearer)
    assert api.status_code == 200 and api.headers["content-type"] == "application/json"
    web = signed_in.get("/tokens")
    assert web.status_code == 200 and web.headers["content-type"].startswith("text/html")
    static = signed_in.get("/static/app.js")
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]
    problem = signed_in.get("/api/v1/projects/nope", headers=bearer)
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"
    error_page = signed_in.get("/p/nope/certificates")
    assert error_page.status_code == 404 and 'data-testid="error-detail"' in error_page.text
    unauthenticated = signed_in.get("/api/v1/projects")  # no token: the guard's 401
    assert unauthenticated.status_code == 401
    too_large = signed_in.post(
        "/api/v1/projects", headers=bearer, content=b" " * (live.settings.max_body_bytes + 1)
    )
    assert too_large.status_code == 413
    missing = signed_in.get("/no/such/page")
    assert missing.status_code == 404
    docs = signed_in.get("/docs")
    assert docs.status_code == 200
    docs_file = signed_in.get("/docs/assets/swagger-ui-bundle.js")
    assert docs_file.status_code == 200
    for response in (
        api,
        web,
        static,
        problem,
        error_page,
        unauthenticated,
        too_large,
        missing,
        docs,
        docs_file,
    ):
        assert_hardened(response)


def test_hsts_only_over_https_as_reported_by_a_trusted_proxy(live: Live) -> None:
    """``certautopilot serve`` runs uvicorn with its defaults: X-Forwarded-Proto is believed
    from 127.0.0.1 (a local reverse proxy terminating TLS), as here."""
    with httpx.Client(base_url=live.url) as client:
        proxied = client.get("/login", headers={"X-Forwarded-Proto": "https"})
        plain = client.get("/login")
    assert proxied.headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in plain.headers


def test_no_hsts_when_the_forwarded_scheme_comes_from_an_untrusted_client(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with (
        live_server(
            database_url, tmp_path_factory.mktemp("untrusted"), forwarded_allow_ips="192.0.2.1"
        ) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


def test_docs_are_served_from_the_package_not_a_cdn(live: Live) -> None:
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/docs").text
        css = client.get("/docs/assets/swagger-ui.css")
        init = client.get("/docs/assets/swagger-init.js")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert "<script>" not in page and "<style" not in page  # no inline code
    assert css.status_code == 200 and init.status_code == 200
    assert "SwaggerUIBundle(" in init.text
