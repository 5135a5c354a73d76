"""What the renewal rules ask an ACME CA without an account: its directory (``profiles``,
``renewalInfo``) and a certificate's renewal information (RFC 9773).

The protocol I/O lives in :mod:`certautopilot.issuers.acme.info`, on the same cached
transport (session, directory) as issuance; these names are kept for the renewal rules.
"""

from __future__ import annotations

from typing import Any

from certautopilot.issuers.acme import info
from certautopilot.renewal.ari import RenewalInfo

advertised_profiles = info.advertised_profiles
renewal_info_url = info.renewal_info_url


def fetch_directory(directory_url: str, ca_bundle_pem: str | None = None) -> dict[str, Any]:
    return info.directory(directory_url, ca_bundle_pem)


def fetch_renewal_info(
    base_url: str, cert_id: str, ca_bundle_pem: str | None, directory_url: str | None = None
) -> RenewalInfo:
    """``directory_url`` picks the CA's transport; without it the base URL's own is used."""
    return info.renewal_info(base_url, cert_id, directory_url or base_url, ca_bundle_pem)
