"""Every form the web UI posts to checks its CSRF token: each POST route outside the JSON
API depends on ``posted_form`` (the ``Form`` parameter), except the few that check a token
of their own, each named here with why. A new view without ``_: Form`` fails this test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant

from certautopilot.app import create_app
from certautopilot.web.common import posted_form
from certautopilot.web.views.imports import _uploads

OWN_CHECK: dict[str, Callable[..., Any] | None] = {
    "/login": None,  # the sign-in form carries a token of its own (no session yet)
    "/invite/{token}": None,  # the invitation link's token is the credential
    "/p/{project}/import": _uploads,  # multipart: _uploads checks the CSRF token itself
}


def _routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def test_every_web_post_checks_its_csrf_token() -> None:
    posts = [
        r
        for r in _routes(create_app().routes)
        if "POST" in (getattr(r, "methods", None) or ())
        and r.endpoint.__module__.startswith("certautopilot.web.")  # not the JSON API
    ]
    assert len(posts) > 30  # the walk reached the views
    unchecked = []
    for route in posts:
        calls = set(_calls(route.dependant))
        if route.path in OWN_CHECK:
            own = OWN_CHECK[route.path]
            assert own is None or own in calls, route.path
            continue
        if posted_form not in calls:
            unchecked.append(route.path)
    assert unchecked == []
