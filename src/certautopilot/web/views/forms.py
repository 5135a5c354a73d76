"""Helpers the settings forms share: reading fields, and errors keyed by form field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from certautopilot.auth import service as auth
from certautopilot.errors import InvalidInput
from certautopilot.validation import field_name
from certautopilot.web.common import Web

Errors = dict[str, list[str]]
M = TypeVar("M", bound=BaseModel)
_SPLIT = re.compile(r"[\s,;]+")


def require_admin(web: Web, action: str = "Changing the project settings") -> None:
    """Settings pages are for project admins; anyone else gets the 403 page."""
    auth.require(web.ctx.actor, "admin", action)


def text(form: dict[str, Any], key: str) -> str:
    value = form.get(key)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").strip()


def optional(form: dict[str, Any], key: str) -> str | None:
    return text(form, key) or None


def listed(form: dict[str, Any], key: str) -> list[str]:
    value = form.get(key) or []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def lines(value: str) -> list[str]:
    """One item per line (commas and spaces separate too)."""
    return [v for v in _SPLIT.split(value) if v]


def whole_lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def add(errors: Errors, field: str, message: str) -> None:
    if message not in errors.setdefault(field, []):
        errors[field].append(message)


def from_validation(exc: ValidationError, field_of: Callable[[str], str]) -> Errors:
    """Pydantic's errors, each next to the form field ``field_of`` names for its location."""
    errors: Errors = {}
    for e in exc.errors():
        name = field_name(tuple(e.get("loc", ())))
        message = str(e.get("msg", "invalid")).replace("Value error, ", "")
        add(errors, field_of(name), message)
    return errors


def validated(
    model: type[M], body: dict[str, Any], field_of: Callable[[str], str], errors: Errors
) -> M | None:
    """``body`` as ``model``; or None, with pydantic's errors added next to their fields."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        for field, messages in from_validation(exc, field_of).items():
            for message in messages:
                add(errors, field, message)
        return None


def from_invalid(exc: InvalidInput, field_of: Callable[[str], str]) -> Errors:
    errors: Errors = {}
    for name, message in exc.errors or [("", str(exc))]:
        add(errors, field_of(name), message)
    return errors


def kept(form: dict[str, Any], secrets: tuple[str, ...]) -> tuple[dict[str, Any], bool]:
    """What the user typed, minus the CSRF token and secrets; and whether a secret was typed."""
    out = {k: v for k, v in form.items() if k != "csrf" and k not in secrets}
    return out, any(text(form, s) for s in secrets)
