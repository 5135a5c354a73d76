"""Pure rules for the DNS names of a certificate request."""

from __future__ import annotations

import re

import idna

from certautopilot.errors import InvalidInput

MAX_SANS = 100
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_name(raw: str) -> str:
    """Lower-case, strip a trailing dot, convert IDNs to A-labels; raise ValueError saying why."""
    name = (raw or "").strip().rstrip(".").lower()
    if not name:
        raise ValueError("is empty")
    wildcard = name.startswith("*.")
    rest = name[2:] if wildcard else name
    if "*" in rest:
        raise ValueError("'*' is allowed only as the whole leftmost label, as in *.example.com")
    try:
        ascii_name = idna.encode(rest, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"is not a valid DNS name ({exc})") from exc
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError("must have at least two labels, such as example.com")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(f"has an invalid label {label!r}")
    full = ("*." if wildcard else "") + ascii_name
    if len(full) > 253:
        raise ValueError("is longer than 253 characters")
    return full


def normalize_names(common_name: str, sans: list[str]) -> list[str]:
    """The names, common name first, de-duplicated; InvalidInput names each bad one."""
    errors: list[tuple[str, str]] = []
    names: list[str] = []
    if not (common_name or "").strip():
        errors.append(("common_name", "is required"))
    else:
        try:
            names.append(normalize_name(common_name))
        except ValueError as exc:
            errors.append(("common_name", f"{common_name!r} {exc}"))
    if len(sans) > MAX_SANS:
        errors.append(("sans", f"at most {MAX_SANS} names, got {len(sans)}"))
    for i, san in enumerate(sans):
        try:
            name = normalize_name(san)
        except ValueError as exc:
            errors.append((f"sans[{i}]", f"{san!r} {exc}"))
            continue
        if name not in names:
            names.append(name)
    if errors:
        raise InvalidInput("; ".join(f"{f}: {m}" for f, m in errors), errors)
    return names


def base_name(name: str) -> str:
    """The name a DNS-01 challenge is published for (a wildcard's base)."""
    return name[2:] if name.startswith("*.") else name
