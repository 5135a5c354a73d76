from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1000)
    from_addr: str = Field(min_length=3, max_length=320)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=1000)
    secret: str | None = Field(default=None, min_length=16, max_length=500)


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["email", "webhook"]
    email: EmailIn | None = None
    webhook: WebhookIn | None = None


class ChannelOut(BaseModel):
    id: str
    name: str
    kind: str
    config: dict[str, object]
    has_secret: bool
