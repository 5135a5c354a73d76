"""The Content-Security-Policy in a real browser (#12 item 8): /docs works offline under it,
and the e2e fixtures notice a violation (so every other browser test fails on one)."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Service
from tests.e2e.conftest import screenshot, sign_in, watch_csp, web_user


def test_docs_render_the_operations_offline_under_the_policy(new_page: Any, live_url: str) -> None:
    page = new_page()
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(live_url):
            route.continue_()
        else:  # a closed network: anything elsewhere (a CDN) fails
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_this_server)
    page.goto("/docs")
    operations = page.locator(".opblock-summary-path")
    operations.first.wait_for()
    paths = operations.all_inner_texts()
    assert any(p.strip().startswith("/api/v1/projects") for p in paths), paths
    assert len(paths) > 20
    # An operation opens (Swagger UI's own script works under script-src 'self').
    page.locator(".opblock-summary", has_text="/api/v1/plugins").first.click()
    page.get_by_role("button", name="Try it out").first.wait_for()
    assert outside == []
    screenshot(page, "docs-offline")


def test_a_violation_is_caught(browser: Any, live_url: str) -> None:
    violations: list[str] = []
    context = watch_csp(browser.new_context(base_url=live_url), violations)
    try:
        page = context.new_page()
        page.goto("/login")
        page.evaluate(  # what an injected inline script would look like: blocked
            "document.body.appendChild(Object.assign(document.createElement('script'),"
            " {textContent: 'document.title = \"pwned\"'}))"
        )
        page.evaluate(  # and an inline style attribute
            "document.body.insertAdjacentHTML('beforeend', '<p style=\"color:red\">x</p>')"
        )
        assert page.title() != "pwned"
        deadline = time.monotonic() + 10
        while len(violations) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(50)  # the reports arrive from the page asynchronously
    finally:
        context.close()
    assert any("script-src" in v for v in violations), violations
    assert any("style-src" in v for v in violations), violations


def test_go_back_on_an_error_page_returns_to_the_page_before(
    service: Service, new_page: Any
) -> None:
    """It was a javascript: URL; now a link that app.js turns into history.back()."""
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto("/tokens")
    page.goto("/p/no-such-project/certificates")
    assert page.get_by_test_id("error-detail").is_visible()
    page.get_by_role("link", name="Go back").click()
    page.wait_for_url("**/tokens")
