"""Pure rules for the DNS names of a certificate request."""

from __future__ import annotations

import re

import idna

from certautopilot.errors import InvalidInput

MAX_NAMES = 100
"""All names of one certificate, the common name included (Let's Encrypt's limit)."""
MAX_CN_LENGTH = 64
"""RFC 5280 ub-common-name. A longer common name stays a name of the certificate (a SAN)
but is left out of the subject, as Let's Encrypt does; see :func:`subject_common_name`."""
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
    for i, san in enumerate(sans):
        try:
            name = normalize_name(san)
        except ValueError as exc:
            errors.append((f"sans[{i}]", f"{san!r} {exc}"))
            continue
        if name not in names:
            names.append(name)
    if len(names) > MAX_NAMES:
        errors.append(("sans", too_many_names(len(names))))
    if errors:
        raise InvalidInput("; ".join(f"{f}: {m}" for f, m in errors), errors)
    return names


def too_many_names(count: int) -> str:
    return f"at most {MAX_NAMES} names in all, the common name included; got {count}"


def subject_common_name(names: list[str]) -> str | None:
    """The CN to put in a CSR's subject: the first name, or None when it is too long for one.

    X.509 caps a CN at 64 characters; the name is still certified, as a SAN (every name is).
    """
    first = names[0]
    return first if len(first) <= MAX_CN_LENGTH else None


def long_common_name_note(names: list[str]) -> str | None:
    """What preflight tells the user when the common name cannot go in the subject."""
    if subject_common_name(names) is not None:
        return None
    return (
        f"The common name is longer than {MAX_CN_LENGTH} characters, the most a certificate's "
        "subject can hold: it is issued as a subject alternative name only, with an empty "
        "subject (as Let's Encrypt does)."
    )


def base_name(name: str) -> str:
    """The name a DNS-01 challenge is published for (a wildcard's base)."""
    return name[2:] if name.startswith("*.") else name
