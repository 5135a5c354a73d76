"""What the core asks an ACME CA without an account: its directory (``meta.profiles``,
``renewalInfo``) and a certificate's renewal information (RFC 9773, an unauthenticated GET).

Why here: this is ACME protocol I/O, so it uses the same process-wide transport (one HTTP
session, one cached directory per ``(directory URL, CA bundle)``, see
:func:`~.client.get_transport`) as issuance. An issuer edited to another directory or CA
bundle gets another transport, so nothing stale is reused. Errors are
:class:`~certautopilot.errors.IssuerError`. Never call it inside a write transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from certautopilot.errors import CertAutoPilotError, IssuerError
from certautopilot.renewal.ari import RenewalInfo, parse_renewal_info

from .client import get_transport


def _plain(value: Any) -> Any:
    """JSON-only values (the library keeps ``meta.profiles`` as a frozendict)."""
    return json.loads(
        json.dumps(value, default=lambda o: dict(o) if isinstance(o, Mapping) else str(o))
    )


def directory(directory_url: str, ca_bundle_pem: str | None = None) -> dict[str, Any]:
    """The CA's directory as plain JSON (cached with the issuance clients' transport)."""
    try:
        found = get_transport(directory_url, ca_bundle_pem).directory()
    except CertAutoPilotError as exc:
        raise IssuerError(f"could not read the ACME directory: {exc}") from exc
    jobj = dict(found.to_partial_json())
    meta = jobj.pop("meta", None)
    out: dict[str, Any] = _plain(jobj)
    if meta is not None:
        partial = meta.to_partial_json() if hasattr(meta, "to_partial_json") else meta
        out["meta"] = _plain(partial)
    return out


def raw_meta(directory_url: str, ca_bundle_pem: str | None = None) -> dict[str, Any]:
    """The directory's ``meta`` exactly as the CA sent it, fields the ACME library does not
    know included (``issuerDomainNames`` and ``accountHashPrefix`` of
    draft-ietf-acme-dns-persist-02 §3.2 and §4.1, which :func:`directory` loses). One GET,
    not cached: the CA may start or stop offering dns-persist-01 at any time."""
    try:
        body = get_transport(directory_url, ca_bundle_pem).get_json(directory_url)
    except CertAutoPilotError as exc:
        raise IssuerError(f"could not read the ACME directory: {exc}") from exc
    meta = body.get("meta")
    return _plain(meta) if isinstance(meta, Mapping) else {}


def advertised_profiles(found: Mapping[str, Any]) -> dict[str, str]:
    """``meta.profiles``: profile name -> description (empty when the CA has none)."""
    meta = found.get("meta")
    offered = meta.get("profiles") if isinstance(meta, Mapping) else None
    if not isinstance(offered, Mapping):
        return {}
    return {str(k): str(v) for k, v in offered.items()}


def renewal_info_url(found: Mapping[str, Any]) -> str | None:
    url = found.get("renewalInfo")
    return url if isinstance(url, str) and url else None


def renewal_info(
    base_url: str, cert_id: str, directory_url: str, ca_bundle_pem: str | None
) -> RenewalInfo:
    """``GET <renewalInfo>/<cert-id>`` through the CA's transport (its trust, its session)."""
    url = f"{base_url.rstrip('/')}/{cert_id}"
    try:
        body, retry_after = get_transport(directory_url, ca_bundle_pem).get_json_with_retry_after(
            url
        )
    except CertAutoPilotError as exc:
        raise IssuerError(f"could not read the renewal information: {exc}") from exc
    return parse_renewal_info(body, retry_after)
