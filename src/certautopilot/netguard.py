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
from typing import Any
from urllib.parse import urlsplit

from certautopilot.errors import DestinationRefused, InvalidInput

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


#: The problem type of a connection the guard refused (``DestinationRefused``), for callers
#: that translate it into their own error (an issuer's, a target's).
REFUSED_PROBLEM = "urn:certautopilot:destination-refused"


def _refusal(host: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    what = "it is" if host.strip("[]") == str(addr) else f"it resolves to {addr},"
    return (
        f"{host} is refused: {what} a non-public address; an operator must allow it "
        "in CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS"
    )


def refusal(host: str, addresses: list[str], reach: Reach | None = None) -> str | None:
    """Why ``host``, resolved to ``addresses``, may not be reached; None when it may."""
    allowed = allowed_networks(reach)
    for text in addresses:
        addr = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope id is not part of it
        if addr.is_global:
            continue
        if any(addr in net for net in allowed):
            continue
        return _refusal(host, addr)
    return None


AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def checked_addresses(
    host: str, port: int | None = None, *, reach: Reach | None = None
) -> list[AddrInfo]:
    """``host`` resolved once, every address checked: connect to these and nothing else.

    Raises :class:`DestinationRefused` when any address is not allowed (a name with one
    public and one private address is refused: which one a client picks is not ours to
    choose), and ``socket.gaierror`` (an ``OSError``) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    why = refusal(host, [str(info[4][0]) for info in infos], reach)
    if why is not None:
        raise DestinationRefused(why, host)
    return [(info[0], info[1], info[2], info[3], tuple(info[4])) for info in infos]


def check_host(host: str, *, field: str, reach: Reach | None = None) -> None:
    try:
        checked_addresses(host, reach=reach)
    except socket.gaierror as exc:
        raise InvalidInput.field(field, f"host {host!r} does not resolve") from exc
    except (UnicodeError, ValueError) as exc:  # a label over 63 characters, a NUL, ...
        raise InvalidInput.field(field, f"{host[:80]!r} is not a valid host name") from exc
    except DestinationRefused as exc:
        raise InvalidInput.field(field, exc.detail) from exc


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
    if parts.username is not None or parts.password is not None:
        # A password in a URL ends up in logs, audit details and every error message.
        raise InvalidInput.field(
            field, "must not contain credentials (user:password@); use the credential fields"
        )
    check_host(hostname, field=field, reach=reach)
