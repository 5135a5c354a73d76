from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.notifications.senders import EmailConfig, WebhookConfig

# The channel plugins' own config models (the secret field marked) are the body blocks.
EmailIn = EmailConfig
WebhookIn = WebhookConfig


class ChannelIn(BaseModel):
    """``{"name", "kind", "<kind>": {...}}``: the block is validated by the channel
    plugin's config model (``email``, ``webhook`` or one another package registers)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=100)
    kind: str = Field(min_length=1, max_length=64, description="a notification channel plugin")
    email: EmailIn | None = None
    webhook: WebhookIn | None = None

    def block(self) -> dict[str, Any] | None:
        """The kind's settings as given, or None."""
        given = getattr(self, self.kind, None) if self.kind in ("email", "webhook") else None
        if isinstance(given, BaseModel):
            return given.model_dump(exclude_unset=True)
        extra = (self.model_extra or {}).get(self.kind.replace("-", "_"))
        return extra if isinstance(extra, dict) else None


class ChannelOut(BaseModel):
    id: str
    name: str
    kind: str
    config: dict[str, object]
    has_secret: bool
