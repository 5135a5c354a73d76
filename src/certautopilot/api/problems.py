"""RFC 9457 problem documents: the one place errors become HTTP responses."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from certautopilot.errors import CertAutoPilotError, InvalidInput, RateLimited
from certautopilot.validation import field_name

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(CertAutoPilotError)
    async def _ours(_: Request, exc: CertAutoPilotError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, InvalidInput):
            extra["errors"] = [{"field": f, "message": m} for f, m in exc.errors]
        warnings = getattr(exc, "warnings", None)
        if warnings is not None:
            extra["warnings"] = warnings
        headers: dict[str, str] | None = None
        if isinstance(exc, RateLimited):
            extra["limit"] = exc.limit
            extra["retry_at"] = exc.retry_at
            if exc.retry_after is not None:
                headers = {"Retry-After": str(math.ceil(exc.retry_after))}
        if exc.status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc)
        return problem(exc.status, exc.title, str(exc), headers=headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Invalid input", detail, errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)  # every connection of the pool stayed busy
    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The request's transaction was rolled back: nothing was half-written.
        log.warning("database unavailable: %s", getattr(exc, "orig", None) or exc)
        response = problem(
            503,
            "Database busy",
            "The database could not take this request now; nothing was changed. "
            "Try again in a moment.",
        )
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # A value a check at the edge let through (a NUL in text PostgreSQL cannot store, a
        # number out of a column's range): the client's doing, and nothing was written. The
        # statement's parameters may hold secrets: only the driver's error class is logged.
        log.warning("database refused a value: %s", type(exc.orig).__name__)
        return problem(
            422,
            "Invalid input",
            "A value cannot be stored: text must not contain a NUL character and numbers "
            "must be within range. Nothing was changed.",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "Internal error", "An unexpected error occurred; it was logged.")
