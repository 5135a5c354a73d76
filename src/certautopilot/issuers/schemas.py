from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AcmeIssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory_url: str = Field(max_length=500)
    contact_email: str | None = Field(default=None, max_length=320)
    terms_agreed: bool = False
    eab_kid: str | None = Field(default=None, max_length=500)
    eab_hmac_key: str | None = Field(default=None, max_length=500)
    ca_bundle_pem: str | None = Field(default=None, max_length=200_000)


class IssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["acme"]
    acme: AcmeIssuerIn


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
