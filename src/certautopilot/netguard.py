"""Refuses private, loopback and link-local destinations unless the operator allowed them.

User-supplied URLs and hosts (an ACME directory, a DNS server) are a classic SSRF path:
only networks listed in ``CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS`` may be reached when
they are not public.

What may be reached is a :class:`Reach`, built from ``Settings`` (``Settings.reach``) and
installed once by whoever builds the process (``app.create_app``, the worker's
``start_worker``) with :func:`install`. The checks run deep inside services and plugins
(a zone's DNS server, a target's endpoint, again before every deployment), so they read
the installed value unless a caller passes ``reach=`` explicitly; nothing here reads the
environment. Until something is installed, nothing private is reachable.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from certautopilot.errors import InvalidInput

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Reach:
    """What user-supplied destinations may reach, as the operator configured it."""

    #: Non-public networks that may be reached (``CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS``).
    private_networks: tuple[Network, ...] = ()
    #: Directories on the service's host targets may use (``CERTAUTOPILOT_LOCAL_TARGET_ROOTS``).
    local_roots: tuple[Path, ...] = ()
    #: Whether targets may run commands on the service's host
    #: (``CERTAUTOPILOT_LOCAL_TARGET_COMMANDS``).
    local_commands: bool = False


_installed = Reach()


def install(reach: Reach) -> None:
    """Sets the process's :class:`Reach` (called where the app or the worker is built)."""
    global _installed
    _installed = reach


def installed() -> Reach:
    return _installed


def allowed_networks(reach: Reach | None = None) -> tuple[Network, ...]:
    return (reach or _installed).private_networks


def check_host(host: str, *, field: str, reach: Reach | None = None) -> None:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise InvalidInput.field(field, f"host {host!r} does not resolve") from exc
    except (UnicodeError, ValueError) as exc:  # a label over 63 characters, a NUL, ...
        raise InvalidInput.field(field, f"{host[:80]!r} is not a valid host name") from exc
    allowed = allowed_networks(reach)
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


def check_url(
    url: str, *, field: str, require_https: bool = True, reach: Reach | None = None
) -> None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise InvalidInput.field(field, f"is not a valid URL: {exc}") from exc
    if require_https and parts.scheme != "https":
        raise InvalidInput.field(field, "must be an https:// URL")
    if not hostname:
        raise InvalidInput.field(field, "must be an absolute URL with a host")
    check_host(hostname, field=field, reach=reach)
