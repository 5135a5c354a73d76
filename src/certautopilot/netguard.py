"""Refuses private, loopback and link-local destinations unless the operator allowed them.

User-supplied URLs and hosts (an ACME directory, a DNS server) are a classic SSRF path:
only networks listed in ``CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS`` may be reached when
they are not public.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from certautopilot.errors import InvalidInput


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    raw = os.environ.get("CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS", "")
    return [ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip()]


def check_host(host: str, *, field: str) -> None:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise InvalidInput.field(field, f"host {host!r} does not resolve") from exc
    except (UnicodeError, ValueError) as exc:  # a label over 63 characters, a NUL, ...
        raise InvalidInput.field(field, f"{host[:80]!r} is not a valid host name") from exc
    allowed = allowed_networks()
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr.is_global:
            continue
        if any(addr in net for net in allowed):
            continue
        raise InvalidInput.field(
            field,
            f"{host} resolves to the non-public address {addr}; an operator must allow it "
            "in CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS",
        )


def check_url(url: str, *, field: str, require_https: bool = True) -> None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise InvalidInput.field(field, f"is not a valid URL: {exc}") from exc
    if require_https and parts.scheme != "https":
        raise InvalidInput.field(field, "must be an https:// URL")
    if not hostname:
        raise InvalidInput.field(field, "must be an absolute URL with a host")
    check_host(hostname, field=field)
