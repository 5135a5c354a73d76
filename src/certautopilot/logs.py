"""Log lines: readable text by default, one JSON object per line with
``CERTAUTOPILOT_LOG_FORMAT=json``; both carry what the line is about.

The context (the request id, the project, the certificate, the workflow) lives in context
variables: the HTTP middleware (``api.request_id``) sets the request id, the request's
dependencies the project and certificate, the worker's steps the workflow and
certificate. :class:`ContextFilter` copies them onto every record of every logger (ours,
uvicorn's, DBOS's), so a formatter finds them whoever logged.

A JSON line has ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger`` and
``message``, then whichever of ``request_id``, ``project``, ``certificate_id`` and
``workflow_id`` are known, and ``exception`` with the traceback text when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
FIELDS = ("request_id", "project", "certificate_id", "workflow_id")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
project: ContextVar[str | None] = ContextVar("project", default=None)
certificate_id: ContextVar[str | None] = ContextVar("certificate_id", default=None)
workflow_id: ContextVar[str | None] = ContextVar("workflow_id", default=None)
_VARS: dict[str, ContextVar[str | None]] = {
    "request_id": request_id,
    "project": project,
    "certificate_id": certificate_id,
    "workflow_id": workflow_id,
}


_providers: list[Callable[[], dict[str, str]]] = []


def add_provider(provider: Callable[[], dict[str, str]]) -> None:
    """Adds a source of context fields (the worker's: the running DBOS workflow), asked
    for each record after the context variables, which win."""
    _providers.append(provider)


def context() -> dict[str, str]:
    """The context fields known here and now."""
    found: dict[str, str] = {}
    for provider in _providers:
        try:
            found.update(provider())
        except Exception:  # a log line must never fail for its context
            continue
    found.update({n: value for n, var in _VARS.items() if (value := var.get()) is not None})
    return found


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Sets context fields for the ``with`` block, then puts the previous values back."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts the context fields on each record (and ``context``: them as ``k=v`` text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        known = context()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, known.get(name))
        shown = {n: getattr(record, n) for n in FIELDS if getattr(record, n, None)}
        record.context = "".join(f" {k}={v}" for k, v in shown.items()) if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a newline in a message stays escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(*, level: str, json_lines: bool) -> None:
    """The root logger of this process: one stderr handler, our format and context."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # DBOS gives its logger a console handler of its own (and no propagation) unless the
    # logger has one already: it gets ours, so its lines take our format too.
    # SQLAlchemy logs every statement with its parameters at INFO once its logger is
    # enabled for it (a root at DEBUG or INFO would): parameters can be anything, so
    # they never go to a log; its warnings still do.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    dbos = logging.getLogger("dbos")
    dbos.handlers = [handler]
    dbos.propagate = False
