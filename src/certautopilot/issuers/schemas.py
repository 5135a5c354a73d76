from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from certautopilot.issuers.adcs.schemas import AdcsIssuerIn, AdcsIssuerOut, AdcsIssuerPatch
from certautopilot.plugins import secret_field
from certautopilot.renewal.issuer_limits import Preset

# RFC 8659 §4.2 issuer-domain-name: dot-separated labels of letters, digits and hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
CAA_IDENTITY = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_WINDOW_MAX = 366 * 86_400


class RateLimitsIn(BaseModel):
    """An issuer's rate limits: a preset (``renewal.issuer_limits`` cites the figures),
    numbers that override it, and whether the CA exempts ARI renewals. Omitted or null on
    the issuer: the service's ``CERTAUTOPILOT_RENEWAL_*`` settings apply."""

    model_config = ConfigDict(extra="forbid")

    preset: Preset | None = None
    orders_per_account: int | None = Field(default=None, ge=1, le=10_000_000)
    account_window_seconds: int | None = Field(default=None, ge=1, le=_WINDOW_MAX)
    certs_per_domain: int | None = Field(default=None, ge=1, le=10_000_000)
    domain_window_seconds: int | None = Field(default=None, ge=1, le=_WINDOW_MAX)
    duplicate_certs: int | None = Field(default=None, ge=1, le=10_000_000)
    duplicate_window_seconds: int | None = Field(default=None, ge=1, le=_WINDOW_MAX)
    ari_renewals_exempt: bool | None = None

    def stored(self) -> dict[str, Any]:
        """What ``issuers.config["rate_limits"]`` keeps (nulls left out)."""
        data = self.model_dump(exclude_none=True, mode="json")
        data.setdefault("preset", None)
        return data


def _caa_identity(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().rstrip(".").lower()
    if not value:
        return None
    if len(value) > 253 or not CAA_IDENTITY.match(value):
        raise ValueError(
            "must be a domain name such as letsencrypt.org (RFC 8659 issuer-domain-name)"
        )
    return value


class AcmeIssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # secrets

    directory_url: str = Field(max_length=500)
    contact_email: str | None = Field(default=None, max_length=320)
    terms_agreed: bool = False
    eab_kid: str | None = Field(default=None, max_length=500)
    eab_hmac_key: str | None = secret_field(None, max_length=500)
    ca_bundle_pem: str | None = Field(default=None, max_length=200_000)
    rate_limits: RateLimitsIn | None = None
    #: The CA's CAA issuer domain name (RFC 8659), e.g. ``letsencrypt.org``; default: the
    #: directory's ``meta.caaIdentities`` or the known CA of the directory URL.
    caa_identity: str | None = Field(default=None, max_length=253)

    _caa = field_validator("caa_identity")(_caa_identity)


class AcmeIssuerPatch(BaseModel):
    """What can change on an ACME issuer without a new account: its limits and its CAA
    identity (null clears either: the service settings, the derived identity)."""

    model_config = ConfigDict(extra="forbid")

    rate_limits: RateLimitsIn | None = None
    caa_identity: str | None = Field(default=None, max_length=253)

    _caa = field_validator("caa_identity")(_caa_identity)


class IssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["acme", "adcs"]
    acme: AcmeIssuerIn | None = None
    adcs: AdcsIssuerIn | None = None

    @model_validator(mode="after")
    def _settings_of_kind(self) -> IssuerIn:
        given = {k for k in ("acme", "adcs") if getattr(self, k) is not None}
        if given != {self.kind}:
            raise ValueError(f"kind {self.kind!r} takes an {self.kind!r} object and no other")
        return self


class IssuerPatch(BaseModel):
    """An edit: AD CS settings (checked at the CA again), or an ACME issuer's limits and
    CAA identity (nothing to check at the CA)."""

    model_config = ConfigDict(extra="forbid")

    adcs: AdcsIssuerPatch | None = None
    acme: AcmeIssuerPatch | None = None
    enabled: bool | None = Field(
        default=None,
        description="false: disabled, no new orders (new requests, renewals and fallbacks "
        "refuse it; its certificates stay valid); true: enabled again",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> IssuerPatch:
        if self.adcs is not None and self.acme is not None:
            raise ValueError("an edit takes an 'adcs' or an 'acme' object, not both")
        if self.adcs is None and self.acme is None and self.enabled is None:
            raise ValueError("an edit takes an 'adcs' or an 'acme' object, or 'enabled'")
        return self


class AcmeIssuerOut(BaseModel):
    directory_url: str
    account_url: str | None
    contact_email: str | None
    eab_kid: str | None
    has_ca_bundle: bool
    #: The limits in force: ``source`` (a preset, or ``settings``), ``limits`` (null: none
    #: budgeted), ``ari_renewals_exempt``, ``custom`` (numbers override the preset).
    rate_limits: dict[str, Any]
    #: The stored choice (null: the service settings).
    rate_limits_preset: str | None = None
    caa_identity: str | None = None
    caa_identity_derived: bool = False


class ProfileOut(BaseModel):
    name: str
    description: str


class IssuerProfilesOut(BaseModel):
    """The profiles (draft-ietf-acme-profiles) the issuer's CA directory advertises in
    ``meta.profiles``, as it says now; empty for a CA with none (Pebble 2.4) or AD CS."""

    issuer: str
    profiles: list[ProfileOut]


class IssuerTestStep(BaseModel):
    step: str
    ok: bool
    detail: str


class IssuerTestOut(BaseModel):
    """What the Test button shows: each step of reaching the CA; nothing was ordered."""

    ok: bool
    steps: list[IssuerTestStep]


class IssuerOut(BaseModel):
    id: str
    name: str
    kind: str
    status: str = Field(description="active or disabled")
    enabled: bool
    acme: AcmeIssuerOut | None = None
    adcs: AdcsIssuerOut | None = None
