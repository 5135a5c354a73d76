from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.notifications.senders import EmailConfig, WebhookConfig

# The channel plugins' own config models (the secret field marked) are the body blocks.
EmailIn = EmailConfig
WebhookIn = WebhookConfig


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
