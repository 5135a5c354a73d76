from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from certautopilot.issuers.adcs.schemas import AdcsIssuerIn, AdcsIssuerOut, AdcsIssuerPatch
from certautopilot.plugins import secret_field


class AcmeIssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # secrets

    directory_url: str = Field(max_length=500)
    contact_email: str | None = Field(default=None, max_length=320)
    terms_agreed: bool = False
    eab_kid: str | None = Field(default=None, max_length=500)
    eab_hmac_key: str | None = secret_field(None, max_length=500)
    ca_bundle_pem: str | None = Field(default=None, max_length=200_000)


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
    """An edit; only AD CS issuers can be edited (the CA is checked again)."""

    model_config = ConfigDict(extra="forbid")

    adcs: AdcsIssuerPatch


class AcmeIssuerOut(BaseModel):
    directory_url: str
    account_url: str | None
    contact_email: str | None
    eab_kid: str | None
    has_ca_bundle: bool


class IssuerOut(BaseModel):
    id: str
    name: str
    kind: str
    status: str
    acme: AcmeIssuerOut | None = None
    adcs: AdcsIssuerOut | None = None
