"""Rate limits per ACME issuer: presets of the CAs' published figures, edits, and the
limits in force for one issuer.

Why per issuer: the budget (``renewal.budget``) used to apply Let's Encrypt's figures to
every ACME CA; a private CA (Pebble, acme2certifier, step-ca) has none and ZeroSSL none
published, so counting against Let's Encrypt's would defer renewals for nothing.

Presets (figures as the CAs publish them, read 2026-12):

* ``letsencrypt`` - https://letsencrypt.org/docs/rate-limits/ : 300 New Orders per Account
  per 3 hours; 50 Certificates per Registered Domain per 7 days; 5 New Certificates per
  Exact Set of Identifiers per 7 days. "Limit Exemptions for Renewals": an order that
  replaces a certificate through ARI (RFC 9773 ``replaces``) is exempt from all of them.
* ``letsencrypt-staging`` - https://letsencrypt.org/docs/staging-environment/ : the same
  limits with other values: 1,500 New Orders per Account per 3 hours, 30,000 Certificates
  per Registered Domain and 30,000 per Exact Set of Identifiers per 7 days; ARI renewals
  exempt as in production.
* ``zerossl`` - ZeroSSL publishes no ACME rate limits ("ZeroSSL doesn't have rate limits",
  acme.sh's ZeroSSL wiki page, which cites ZeroSSL): nothing is budgeted; a 429 the CA
  sends is still honoured with its Retry-After (``renewal.scheduler``).
* ``google`` - Google Trust Services publishes no per-order figures for its ACME API
  (its ACME divergences page says it sends no rate-limit Link headers); quotas are set per
  Cloud project. Nothing is budgeted by default; enter your project's quota as numbers.
* ``none`` - no budget (a private CA).

An issuer that names no ``rate_limits`` keeps the service's settings
(``CERTAUTOPILOT_RENEWAL_*``, ``config.Settings.rate_limits``: Let's Encrypt's figures by
default), with ARI renewals counted and checked like any order - what every issuer had
before limits were per issuer. Numbers given beside a preset override the preset's (or,
for a preset without limits, the service settings'); the budget share
(``CERTAUTOPILOT_RENEWAL_BUDGET_SHARE``) stays a service setting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from certautopilot.renewal.budget import Limits


class Preset(StrEnum):
    LETSENCRYPT = "letsencrypt"
    LETSENCRYPT_STAGING = "letsencrypt-staging"
    ZEROSSL = "zerossl"
    GOOGLE = "google"
    NONE = "none"


@dataclass(frozen=True)
class PresetLimits:
    title: str
    limits: Limits | None  # None: the CA has no limits to budget for
    ari_renewals_exempt: bool


_DAY = timedelta(days=7)
PRESETS: dict[Preset, PresetLimits] = {
    Preset.LETSENCRYPT: PresetLimits(
        "Let's Encrypt",
        Limits(300, timedelta(hours=3), 50, _DAY, 5, _DAY),
        ari_renewals_exempt=True,
    ),
    Preset.LETSENCRYPT_STAGING: PresetLimits(
        "Let's Encrypt staging",
        Limits(1500, timedelta(hours=3), 30_000, _DAY, 30_000, _DAY),
        ari_renewals_exempt=True,
    ),
    Preset.ZEROSSL: PresetLimits("ZeroSSL (no published limits)", None, False),
    Preset.GOOGLE: PresetLimits("Google Trust Services (no published limits)", None, False),
    Preset.NONE: PresetLimits("None (a private CA)", None, False),
}

#: The numbers an issuer may set, each with the ``Limits`` field and unit it maps to.
FIELDS: dict[str, tuple[str, bool]] = {
    "orders_per_account": ("orders_per_account", False),
    "account_window_seconds": ("account_window", True),
    "certs_per_domain": ("certs_per_domain", False),
    "domain_window_seconds": ("domain_window", True),
    "duplicate_certs": ("duplicate_certs", False),
    "duplicate_window_seconds": ("duplicate_window", True),
}

SETTINGS = "settings"  # the source of limits for an issuer that names none


@dataclass(frozen=True)
class IssuerLimits:
    """The limits in force for one issuer. ``limits`` None: nothing is budgeted.
    ``source`` is the preset's name, or ``settings`` (the service's settings)."""

    limits: Limits | None
    ari_renewals_exempt: bool
    source: str
    custom: bool = False

    def applies(self, *, ari_renewal: bool) -> bool:
        """Whether an order is checked against the budget: not when there are no limits,
        nor for an ARI renewal the CA exempts."""
        return self.limits is not None and not (ari_renewal and self.ari_renewals_exempt)


def preset_for_directory(directory_url: str) -> Preset | None:
    """The preset a well-known directory URL suggests (shown in the UI, never applied on
    its own: an issuer that names no preset keeps the service settings)."""
    url = directory_url.lower()
    if "acme-staging-v02.api.letsencrypt.org" in url:
        return Preset.LETSENCRYPT_STAGING
    if "api.letsencrypt.org" in url:
        return Preset.LETSENCRYPT
    if "acme.zerossl.com" in url:
        return Preset.ZEROSSL
    if ".pki.goog" in url:
        return Preset.GOOGLE
    return None


def resolve(config: dict[str, Any] | None, *, default: Limits) -> IssuerLimits:
    """The limits in force for an issuer whose ``config["rate_limits"]`` is ``config``,
    with ``default`` (the service settings) for an issuer that names none."""
    if not config:
        return IssuerLimits(default, ari_renewals_exempt=False, source=SETTINGS)
    raw = config.get("preset")
    preset = PRESETS.get(Preset(raw)) if isinstance(raw, str) and raw in set(Preset) else None
    base = preset.limits if preset is not None else default
    numbers = {k: config[k] for k in FIELDS if config.get(k) is not None}
    exempt = config.get("ari_renewals_exempt")
    if preset is not None and preset.limits is None and not numbers:
        return IssuerLimits(None, bool(exempt), str(raw))
    changes: dict[str, Any] = {}
    for key, value in numbers.items():
        name, seconds = FIELDS[key]
        changes[name] = timedelta(seconds=int(value)) if seconds else int(value)
    limits = replace(base or default, **changes, share=default.share)
    return IssuerLimits(
        limits,
        ari_renewals_exempt=bool(
            preset.ari_renewals_exempt if exempt is None and preset else exempt
        ),
        source=str(raw) if preset is not None else SETTINGS,
        custom=bool(numbers),
    )


def describe(found: IssuerLimits) -> dict[str, Any]:
    """The limits in force as the API shows them (numbers, windows in seconds)."""
    lim = found.limits
    numbers: dict[str, int] | None = None
    if lim is not None:
        numbers = {
            "orders_per_account": lim.orders_per_account,
            "account_window_seconds": int(lim.account_window.total_seconds()),
            "certs_per_domain": lim.certs_per_domain,
            "domain_window_seconds": int(lim.domain_window.total_seconds()),
            "duplicate_certs": lim.duplicate_certs,
            "duplicate_window_seconds": int(lim.duplicate_window.total_seconds()),
        }
    return {
        "source": found.source,
        "custom": found.custom,
        "limits": numbers,
        "ari_renewals_exempt": found.ari_renewals_exempt,
    }
