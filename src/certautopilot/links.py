"""Every URL of the web UI, built in one place.

Notifications (emails, webhooks) carry absolute links, so they pass the service's public
URL (``Settings.public_url``) as ``base``; the web views redirect with relative paths
(``base=""``). The UI lives under ``/p/<project slug>/``; the JSON API under ``/api/v1``
is not built here. tests/integration/test_notification_links.py follows every link a
notification carries and expects the page.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode


def _join(base: str, *segments: str, query: dict[str, str] | None = None) -> str:
    path = "/".join(quote(s, safe="") for s in segments)
    url = f"{base.rstrip('/')}/{path}"
    return f"{url}?{urlencode(query, quote_via=quote)}" if query else url


def project(slug: str, *, base: str = "") -> str:
    """A project's home: its certificate inventory."""
    return certificates(slug, base=base)


def certificates(slug: str, *, base: str = "") -> str:
    return _join(base, "p", slug, "certificates")


def certificate(slug: str, cert_id: str, *, base: str = "") -> str:
    return _join(base, "p", slug, "certificates", cert_id)


def new_certificate(slug: str, *, base: str = "") -> str:
    return _join(base, "p", slug, "certificates", "new")


def requests(slug: str, *, base: str = "", **query: str) -> str:
    """The approval requests; ``status=""`` lists every status (default: pending)."""
    return _join(base, "p", slug, "requests", query=query or None)


def request(slug: str, request_id: str, *, base: str = "") -> str:
    """One approval request, with its approve / reject form for an approver."""
    return _join(base, "p", slug, "requests", request_id)


def settings(slug: str, page: str = "", *, base: str = "", **query: str) -> str:
    """A project's settings: ``issuers``, ``zones``, ``policy``, ``members`` (or the first)."""
    segments = ("p", slug, "settings", page) if page else ("p", slug, "settings")
    return _join(base, *segments, query=query or None)


def tokens(*, base: str = "") -> str:
    return _join(base, "tokens")


def invitation(token: str, *, base: str = "") -> str:
    """A one-time sign-in link (``auth.invitations``): choose a password, be signed in."""
    return _join(base, "invite", token)
