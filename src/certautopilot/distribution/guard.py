"""What targets may reach: remote endpoints (SSRF rules) and the service's own host.

* Remote hosts and URLs go through ``netguard``: private, loopback and link-local
  destinations are refused unless ``CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS`` allows them.
  Plain ``http://`` is accepted only for such an operator-allowed private address (a
  Vault dev server, moto, an in-cluster API); anything public must be HTTPS.
* Paths on the service's host (``local`` targets, HAProxy admin sockets and files) must
  lie under a directory listed in ``CERTAUTOPILOT_LOCAL_TARGET_ROOTS`` (``:``-separated);
  none are allowed by default. Running a reload command on the service's host also needs
  ``CERTAUTOPILOT_LOCAL_TARGET_COMMANDS=1``: a project admin must not gain a shell on
  the service's machine unless the operator says so.

Checked when a target is saved and again before each deployment (DNS may change). The
operator's choices arrive as the :class:`~certautopilot.netguard.Reach` the app or the
worker installed at start (``Settings.reach``), or as an explicit ``reach=``.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from certautopilot.errors import InvalidInput
from certautopilot.netguard import Reach, allowed_networks, check_host, check_url, installed

ROOTS_ENV = "CERTAUTOPILOT_LOCAL_TARGET_ROOTS"
COMMANDS_ENV = "CERTAUTOPILOT_LOCAL_TARGET_COMMANDS"


def local_roots(reach: Reach | None = None) -> tuple[Path, ...]:
    return (reach or installed()).local_roots


def check_local_path(path: str, *, field: str, reach: Reach | None = None) -> Path:
    """``path`` resolved (symlinks followed), when it lies under an allowed root."""
    roots = local_roots(reach)
    if not roots:
        raise InvalidInput.field(
            field,
            "targets on the service's own host are disabled; an operator must list the "
            f"allowed directories in {ROOTS_ENV}",
        )
    resolved = Path(path).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise InvalidInput.field(field, f"{path} is not under a directory allowed by {ROOTS_ENV}")
    return resolved


def check_local_command(command: str | None, *, field: str, reach: Reach | None = None) -> None:
    if command and not (reach or installed()).local_commands:
        raise InvalidInput.field(
            field,
            "commands on the service's own host are disabled; an operator must set "
            f"{COMMANDS_ENV}=1",
        )


def _private_allowed(host: str, reach: Reach | None) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    nets = allowed_networks(reach)
    addrs = [ipaddress.ip_address(info[4][0]) for info in infos]
    return bool(addrs) and all(not a.is_global and any(a in net for net in nets) for a in addrs)


def check_endpoint(url: str, *, field: str, reach: Reach | None = None) -> None:
    """An API endpoint: HTTPS anywhere allowed, plain HTTP only on allowed private nets."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise InvalidInput.field(field, "must be an https:// URL")
    if not parts.hostname:
        raise InvalidInput.field(field, "must be an absolute URL with a host")
    if parts.scheme == "http" and not _private_allowed(parts.hostname, reach):
        raise InvalidInput.field(
            field,
            "must be an https:// URL (plain http is accepted only for private addresses "
            "an operator allowed in CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS)",
        )
    check_url(url, field=field, require_https=False, reach=reach)


def check_https(url: str, *, field: str, reach: Reach | None = None) -> None:
    check_url(url, field=field, require_https=True, reach=reach)


def check_remote_host(host: str, *, field: str, reach: Reach | None = None) -> None:
    check_host(host, field=field, reach=reach)
