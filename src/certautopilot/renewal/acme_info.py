"""What the renewal rules ask an ACME CA without an account: its directory (``profiles``,
``renewalInfo``) and a certificate's renewal information (RFC 9773, an unauthenticated GET).

Plain HTTPS with the issuer's CA bundle; the directory is cached for ten minutes per URL.
Errors become :class:`IssuerError`. Never called inside a write transaction.
"""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import httpx

from certautopilot.errors import IssuerError
from certautopilot.renewal.ari import RenewalInfo, parse_renewal_info

DIRECTORY_TTL = 600.0
TIMEOUT = 10.0
_lock = threading.Lock()
_directories: dict[str, tuple[float, dict[str, Any]]] = {}


def _verify(ca_bundle_pem: str | None) -> ssl.SSLContext | bool:
    if not ca_bundle_pem:
        return True
    return ssl.create_default_context(cadata=ca_bundle_pem)


def fetch_directory(directory_url: str, ca_bundle_pem: str | None = None) -> dict[str, Any]:
    now = time.monotonic()
    with _lock:
        hit = _directories.get(directory_url)
        if hit is not None and now - hit[0] < DIRECTORY_TTL:
            return hit[1]
    try:
        response = httpx.get(directory_url, verify=_verify(ca_bundle_pem), timeout=TIMEOUT)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise IssuerError(f"could not read the ACME directory: {exc}") from exc
    if not isinstance(body, dict):
        raise IssuerError("the ACME directory is not a JSON object")
    with _lock:
        _directories[directory_url] = (now, body)
    return body


def advertised_profiles(directory: dict[str, Any]) -> dict[str, str]:
    """``meta.profiles``: profile name -> description (empty when the CA has none)."""
    meta = directory.get("meta")
    profiles = meta.get("profiles") if isinstance(meta, dict) else None
    if not isinstance(profiles, dict):
        return {}
    return {str(k): str(v) for k, v in profiles.items()}


def renewal_info_url(directory: dict[str, Any]) -> str | None:
    url = directory.get("renewalInfo")
    return url if isinstance(url, str) and url else None


def fetch_renewal_info(base_url: str, cert_id: str, ca_bundle_pem: str | None) -> RenewalInfo:
    url = f"{base_url.rstrip('/')}/{cert_id}"
    try:
        response = httpx.get(url, verify=_verify(ca_bundle_pem), timeout=TIMEOUT)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise IssuerError(f"could not read the renewal information: {exc}") from exc
    if not isinstance(body, dict):
        raise IssuerError("the renewal information is not a JSON object")
    return parse_renewal_info(body, response.headers.get("Retry-After"))


def clear_cache() -> None:
    with _lock:
        _directories.clear()
