"""Log lines: JSON objects with their context, readable text by default, request ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from certautopilot import logs, telemetry
from certautopilot.api.request_id import request_id_of


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root logger configured as a process does it, writing to a buffer."""
    touched = [logging.getLogger(n) for n in ("", "dbos", "sqlalchemy")]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in touched]
    out = io.StringIO()
    yield out
    for lg, (handlers, level, propagate) in zip(touched, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def _configure(out: io.StringIO, *, json_lines: bool) -> None:
    logs.configure(level="DEBUG", json_lines=json_lines)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)


def test_a_json_line_has_its_fields_and_context(stream: io.StringIO) -> None:
    _configure(stream, json_lines=True)
    with logs.bound(request_id="r-1", project="shop", certificate_id="c" * 32):
        logging.getLogger("certautopilot.test").info("two\nlines %s", "here")
    logging.getLogger("other").warning("no context")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "certautopilot.test"
    assert first["message"] == "two\nlines here"  # one line of output all the same
    assert (first["request_id"], first["project"], first["certificate_id"]) == (
        "r-1",
        "shop",
        "c" * 32,
    )
    assert first["time"].endswith("+00:00")
    assert "request_id" not in second and second["level"] == "WARNING"


def test_an_exception_is_in_its_line(stream: io.StringIO) -> None:
    _configure(stream, json_lines=True)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("it failed")
    (line,) = stream.getvalue().splitlines()
    body = json.loads(line)
    assert "ValueError: boom" in body["exception"]


def test_the_text_format_stays_readable_with_context(stream: io.StringIO) -> None:
    _configure(stream, json_lines=False)
    with logs.bound(project="shop"):
        logging.getLogger("certautopilot.test").info("hello")
    logging.getLogger("certautopilot.test").info("bare")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO certautopilot.test: hello project=shop")
    assert second.endswith("INFO certautopilot.test: bare")


def test_a_provider_adds_context_and_never_breaks_a_line(stream: io.StringIO) -> None:
    _configure(stream, json_lines=True)

    def broken() -> dict[str, str]:
        raise RuntimeError("no context here")

    logs.add_provider(broken)
    logs.add_provider(lambda: {"workflow_id": "issue:v1"})
    try:
        logging.getLogger("w").info("step")
    finally:
        logs._providers.clear()
    assert json.loads(stream.getvalue())["workflow_id"] == "issue:v1"


def test_sql_parameters_never_reach_a_log(stream: io.StringIO) -> None:
    _configure(stream, json_lines=True)
    assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("bad id", False), (None, False)],
)
def test_a_request_id_is_kept_when_sensible(given: str | None, kept: bool) -> None:
    found = request_id_of(given)
    assert (found == given) is kept
    assert 1 <= len(found) <= 128


@pytest.mark.parametrize(
    ("problem_type", "label"),
    [
        ("urn:ietf:params:acme:error:rateLimited", "rateLimited"),
        ("https://certautopilot.dev/problems/dns", "dns"),
        ("CERTSRV_E_TEMPLATE_DENIED", "CERTSRV_E_TEMPLATE_DENIED"),
        (None, "none"),
        ("urn:x:" + "y" * 60, "other"),
        ("urn:x:bad label", "other"),
    ],
)
def test_problem_labels_are_bounded(problem_type: str | None, label: str) -> None:
    assert telemetry.problem_label(problem_type) == label
