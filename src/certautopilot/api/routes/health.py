"""What operators and their tools ask, outside ``/api/v1``: ``/healthz`` (the process
answers), ``/readyz`` (it can do its work) and ``/metrics`` (Prometheus text).

``/metrics`` asks for ``CERTAUTOPILOT_METRICS_TOKEN`` as a bearer token when one is set;
when ``CERTAUTOPILOT_METRICS_ADDRESS`` is set it is served there instead (``cli serve``),
and the main port has none.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from certautopilot.api.problems import problem
from certautopilot.clock import utcnow
from certautopilot.deps import State, bearer_token
from certautopilot.ops import metrics, readiness

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """The process is alive and answers; nothing else is checked (a liveness probe)."""
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(state: State) -> JSONResponse:
    """200 when the database answers, the schema is at the code's migration heads, a
    worker heartbeat is fresh and the KEK wraps and unwraps; 503 naming what is not."""
    found = readiness.readiness(
        engine=state.engine,
        sessions=state.sessions,
        settings=state.settings,
        kek=state.kek,
        now=utcnow,
    )
    return JSONResponse(found.body(), status_code=200 if found.ready else 503)


def metrics_router() -> APIRouter:
    """``/metrics`` on the main port (``create_app`` leaves it out when a separate
    address is configured)."""
    route = APIRouter()

    @route.get("/metrics", include_in_schema=False)
    def scrape(request: Request, state: State) -> Response:
        wanted = state.settings.metrics_token
        if wanted is not None:
            given = bearer_token(request.headers.get("authorization", "")) or ""
            if not hmac.compare_digest(given.encode(), wanted.encode()):
                return problem(
                    401,
                    "Unauthenticated",
                    "send the metrics token as 'Authorization: Bearer <token>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        found = metrics.registry(state.settings.metrics_dir, state.sessions, utcnow)
        return Response(metrics.render(found), media_type=CONTENT_TYPE_LATEST)

    return route
