"""The request id, project and certificate of a request's log lines.

The request id is taken from the request's ``X-Request-ID`` when it is a sensible one
(up to 128 characters of letters, digits and ``-_.:``), made up otherwise; set for the
request's log lines (``logs.request_id``) and returned in the response's ``X-Request-ID``.
Each request ends with one line of the ``certautopilot.access`` logger (method, path
without the query, status, milliseconds) carrying them; ``serve`` turns uvicorn's own
access log off, which runs outside the request's context.

The project and the certificate come from the path (``/api/v1/projects/<slug>/
certificates/<id>...`` and the web UI's ``/projects/<slug>/...``), read here before
routing: a dependency that ran in a worker thread could not hand them to the route's own
thread. A pure ASGI middleware, so it also covers answers given before routing."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certautopilot import logs

access_log = logging.getLogger("certautopilot.access")
HEADER = "x-request-id"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SUBJECT = re.compile(
    r"/projects/([a-z0-9][a-z0-9-]{0,63})(?:/certificates/([0-9a-f]{32}))?(?:/|$)"
)


def request_id_of(given: str | None) -> str:
    if given is not None and _ACCEPTED.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k == HEADER.encode()),
            None,
        )
        rid = request_id_of(given)
        subject = _SUBJECT.search(scope.get("path", ""))

        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        with logs.bound(
            request_id=rid,
            project=subject.group(1) if subject else None,
            certificate_id=subject.group(2) if subject else None,
        ):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                # The path without its query string (a query may carry a token).
                access_log.info(
                    "%s %s %d %.1f ms",
                    scope.get("method", "-"),
                    scope.get("path", "-"),
                    status,
                    (time.perf_counter() - started) * 1000,
                )
