"""API shapes of DNS zones and of the DNS provider plugins.

A zone names its provider plugin and gives that plugin's ``settings``; the settings are
validated by the plugin's own config model (:mod:`certautopilot.plugins`), so a provider
added by another package needs no change here. The older ``{"provider": "rfc2136",
"rfc2136": {...}}`` body stays valid: its block is the rfc2136 plugin's settings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=253)
    provider: str = Field(
        min_length=1,
        max_length=32,
        description="a DNS provider plugin's name (GET /api/v1/dns-providers lists them)",
    )
    settings: dict[str, Any] | None = Field(
        default=None, description="the provider's settings (its fields and secrets)"
    )
    rfc2136: dict[str, Any] | None = Field(
        default=None, description="older form of settings, for provider rfc2136 only"
    )
    nameservers: list[str] | None = Field(default=None, max_length=20)
    propagation_timeout_seconds: int = Field(default=120, ge=1, le=3600)


class RFC2136Out(BaseModel):
    server: str
    port: int
    tsig_name: str
    tsig_algorithm: str


class ZoneOut(BaseModel):
    id: str
    name: str
    provider: str
    settings: dict[str, Any] = Field(
        default_factory=dict, description="the provider's settings, without secrets"
    )
    credentials: list[str] = Field(
        default_factory=list, description="names of the stored (never shown) secret settings"
    )
    nameservers: list[str]
    propagation_timeout_seconds: int
    enabled: bool = Field(
        description="false: disabled, no DNS-01 record is written in it (new requests and "
        "renewals for its names wait until it is enabled again)"
    )
    rfc2136: RFC2136Out | None = None


class ProviderField(BaseModel):
    name: str
    required: bool
    secret: bool
    help: str


class DNSProviderOut(BaseModel):
    name: str
    title: str
    fields: list[ProviderField]
    tested: bool


class ZonePatch(BaseModel):
    """An edit: only the given keys change. ``settings`` is merged key by key over the
    stored settings (a secret given is replaced, one left out is kept); the zone's name
    and provider are fixed (delete and add the zone to change them)."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] | None = Field(
        default=None, description="settings to change, merged over the stored ones"
    )
    rfc2136: dict[str, Any] | None = Field(
        default=None, description="older form of settings, for provider rfc2136 only"
    )
    nameservers: list[str] | None = Field(default=None, max_length=20)
    propagation_timeout_seconds: int | None = Field(default=None, ge=1, le=3600)
    enabled: bool | None = Field(
        default=None,
        description="false: disable the zone (no DNS-01 record is written in it; its "
        "settings and certificates are kept); true: enable it again",
    )

    def changes_settings(self) -> bool:
        """Whether the edit touches what the provider check vets (not only ``enabled``)."""
        return bool(self.model_fields_set - {"enabled"})


class ZoneTestStep(BaseModel):
    step: str
    ok: bool
    detail: str


class ZoneTestOut(BaseModel):
    ok: bool
    steps: list[ZoneTestStep]


class ZoneSuggestion(BaseModel):
    name: str = Field(description="the name asked about")
    zone: str | None = Field(description="the project zone holding it (longest suffix)")
    zone_id: str | None = None
    apex: str | None = Field(
        default=None, description="the zone apex found by walking up SOA records"
    )
    detail: str = ""


class ZoneCaaIssuerOut(BaseModel):
    """Whether the zone's own CAA records (at its apex) allow one of the project's issuers."""

    issuer_id: str
    issuer: str
    caa_identity: str | None
    account_url: str | None
    allowed: bool | None = Field(description="null when the records could not be read")
    detail: str


class ZoneCaaOut(BaseModel):
    """The CAA records that govern the zone's apex (RFC 8659: its own or its closest
    parent's), what they say about each ACME issuer of the project, and the records that
    would allow them all (``issue`` and ``issuewild``, bound to the account and DNS-01)."""

    zone: str
    found_at: str | None
    records: list[str]
    error: str | None
    issuers: list[ZoneCaaIssuerOut]
    suggested: list[str]
