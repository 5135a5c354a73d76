"""Field names for validation errors, shared by the API's problem documents and the web forms."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field


def field_name(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a dotted field name: ``("body", "sans", 0)`` -> ``sans[0]``."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


MAX_INT32 = 2**31 - 1
"""The ceiling of every integer a client sends that has no tighter natural bound (a version
number, a uid, a provider's numeric option). Bounded integers keep a typo or a probe such as
``9223372036854775808`` a 422/404 at the edge instead of an OverflowError in SQLite's driver
or an integer no column holds; ``tests/unit/test_bounded_inputs.py`` walks the OpenAPI
schema so that no unbounded integer or number input comes back."""


ObjectId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="an id as the service gives it (letters, digits, '-', '_')",
    ),
]
"""An id a client sends inside a body (the targets to attach or deploy to): checked at the
edge, so a NUL or a page of text is a 422 naming the element, never a database error."""


def has_control_characters(value: str) -> bool:
    """A NUL, a line break or another C0/C1 control character: never part of an e-mail
    address or a name, and PostgreSQL cannot store a NUL at all."""
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)
