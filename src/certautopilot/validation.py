"""Field names for validation errors, shared by the API's problem documents and the web forms."""

from __future__ import annotations

from typing import Any


def field_name(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a dotted field name: ``("body", "sans", 0)`` -> ``sans[0]``."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"
