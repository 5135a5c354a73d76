from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RFC2136In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: str = Field(min_length=1, max_length=253)
    port: int = Field(default=53, ge=1, le=65535)
    tsig_name: str = Field(min_length=1, max_length=253)
    tsig_algorithm: Literal[
        "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
    ] = "hmac-sha256"
    tsig_secret: str = Field(min_length=1, max_length=1000)


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=253)
    provider: Literal["rfc2136", "manual"]
    rfc2136: RFC2136In | None = None
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
    nameservers: list[str]
    propagation_timeout_seconds: int
    rfc2136: RFC2136Out | None = None
