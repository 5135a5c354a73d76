"""``links``: the UI's URLs, relative for the views and absolute for notifications."""

from __future__ import annotations

from certautopilot import links


def test_pages_live_under_p_slug() -> None:
    assert links.project("web") == "/p/web/certificates"
    assert links.certificates("web") == "/p/web/certificates"
    assert links.new_certificate("web") == "/p/web/certificates/new"
    assert links.certificate("web", "c1") == "/p/web/certificates/c1"
    assert links.requests("web") == "/p/web/requests"
    assert links.request("web", "r1") == "/p/web/requests/r1"
    assert links.settings("web") == "/p/web/settings"
    assert links.settings("web", "zones") == "/p/web/settings/zones"
    assert links.tokens() == "/tokens"


def test_absolute_with_the_public_url() -> None:
    for base in ("https://certs.example.test", "https://certs.example.test/"):
        assert (
            links.certificate("web", "c1", base=base)
            == "https://certs.example.test/p/web/certificates/c1"
        )
    assert links.request("w", "r", base="http://127.0.0.1:8000") == (
        "http://127.0.0.1:8000/p/w/requests/r"
    )


def test_query_and_segments_are_escaped() -> None:
    assert links.requests("web", status="", decided="r1") == "/p/web/requests?status=&decided=r1"
    assert links.settings("web", "issuers", created="my ca&x") == (
        "/p/web/settings/issuers?created=my%20ca%26x"
    )
    assert links.certificate("web", "../admin") == "/p/web/certificates/..%2Fadmin"
