"""The HTTP server's first gate: bounded request bodies, and API callers identified first.

A pure ASGI middleware (it wraps ``receive`` and ``send``; nothing is buffered), so it acts
before FastAPI reads a body. Without it a 100 MB JSON body was read and parsed in full, and
a request without a token learned it needed one only after that.

- A declared ``Content-Length`` over the limit is answered 413 at once; the body is never
  read (a client sending ``Expect: 100-continue`` is not even asked for it).
- A body without a length (chunked) is counted as it streams in; at the first byte over the
  limit the app's read fails and the answer is 413, whatever the app made of the cut-off
  body (a web form's 413 error page is kept; any other answer is replaced).
- An ``/api/`` request without a bearer token (the only credential the API takes: the web
  session cookie is not one) is answered 401 before its body is read, with the very answer
  the route would give.

Each early answer closes the connection when a body was coming, so the server never reads
the rest of it to keep the connection alive.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certautopilot.api.problems import problem
from certautopilot.deps import BEARER_HINT, bearer_token
from certautopilot.errors import BodyTooLarge, CertAutoPilotError, Unauthenticated

API_PREFIX = "/api/"


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"the request body is over this server's limit of {limit} bytes", limit)


def declared_length(headers: Headers) -> int | None:
    """The ``Content-Length`` a request declares, or None (absent; uvicorn refuses a
    malformed one before the app sees the request)."""
    raw = headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def has_body(headers: Headers) -> bool:
    return bool(declared_length(headers)) or "transfer-encoding" in headers


async def answer(
    exc: CertAutoPilotError, scope: Scope, receive: Receive, send: Send, *, close: bool = True
) -> None:
    """The problem document for ``exc``; ``close`` ends the connection (a body is unread)."""
    extra = {"limit": exc.limit} if isinstance(exc, BodyTooLarge) else {}
    headers = {"Connection": "close"} if close else None
    response = problem(exc.status, exc.title, str(exc), headers=headers, **extra)
    await response(scope, receive, send)


@dataclass
class _Stream:
    """One request's body as it streams in, and what became of the app's answer."""

    limit: int
    received: int = 0
    exceeded: bool = False
    started: bool = False  # the app's answer went out (before the limit, or a 413 of its own)
    swallowing: bool = False  # the app's answer to a cut-off body is being dropped


class HttpGuard:
    """Refuses oversized bodies (413) and token-less API calls (401) before reading them."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if (
            scope["path"].startswith(API_PREFIX)
            and bearer_token(headers.get("authorization", "")) is None
        ):
            await answer(
                Unauthenticated(BEARER_HINT), scope, receive, send, close=has_body(headers)
            )
            return
        length = declared_length(headers)
        if length is not None and length > self.limit:
            await answer(too_large(self.limit), scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = _Stream(self.limit)

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                stream.received += len(message.get("body", b""))
                if stream.received > stream.limit:
                    stream.exceeded = True
                    raise too_large(stream.limit)
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if stream.exceeded and message["status"] != BodyTooLarge.status:
                    stream.swallowing = True  # e.g. FastAPI's 400 for an unreadable body
                    return
                if stream.exceeded:
                    message = {
                        **message,
                        "headers": [*message["headers"], (b"connection", b"close")],
                    }
                stream.started = True
            elif stream.swallowing:
                return
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not stream.exceeded:
                raise
        if stream.exceeded and not stream.started:
            await answer(too_large(self.limit), scope, receive, send)
