"""No route or view that touches the database runs on the event loop.

FastAPI runs a plain ``def`` endpoint in its threadpool and awaits an ``async def`` one on
the event loop, where a database query, a CA call or a password hash stalls every other
request. Endpoints that need the session are therefore plain ``def``s (the web forms are
read by an async dependency before the view runs)."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute

from certautopilot.api.routes import (
    certificates,
    governance,
    issuers,
    projects,
    targets,
    versions,
    zones,
)
from certautopilot.web.views import (
    auth,
    requests,
    settings_issuers,
    settings_project,
    settings_zones,
    tokens,
)
from certautopilot.web.views import certificates as certificate_views

MODULES = (
    *(certificates, governance, issuers, projects, targets, versions, zones),
    *(auth, certificate_views, requests, settings_issuers, settings_project, tokens),
    settings_zones,
)


def _routes() -> list[APIRoute]:
    return [r for m in MODULES for r in m.router.routes if isinstance(r, APIRoute)]


def _uses_session(route: APIRoute) -> bool:
    pending = [route.dependant]
    while pending:
        dep = pending.pop()
        if dep.call is not None and dep.call.__name__ == "get_session":
            return True
        pending.extend(dep.dependencies)
    return False


def test_every_endpoint_with_a_session_runs_in_the_threadpool() -> None:
    routes = [r for r in _routes() if _uses_session(r)]
    assert len(routes) > 40  # the API's and the web UI's, not an empty walk
    on_loop = [
        f"{sorted(r.methods)} {r.path}" for r in routes if inspect.iscoroutinefunction(r.endpoint)
    ]
    assert on_loop == []
