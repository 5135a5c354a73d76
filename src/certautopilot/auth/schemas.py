"""The JSON shapes of web sessions as an instance admin sees them, and of API tokens
(never a token itself, but once, when made)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.auth.tokens import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS


class WebSessionOut(BaseModel):
    id: str
    email: str
    created_at: datetime
    last_seen_at: datetime
    #: When the session ends if not used again (idle timeout), and at the latest.
    idle_expires_at: datetime
    expires_at: datetime
    client: str
    user_agent: str


class WebSessionList(BaseModel):
    items: list[WebSessionOut]


class SessionsRevoked(BaseModel):
    revoked: int


Role = Literal["viewer", "operator", "approver", "admin"]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, description="the script or machine that uses it"
    )
    expires_in_days: int | None = Field(
        default=DEFAULT_EXPIRY_DAYS,
        ge=1,
        le=MAX_EXPIRY_DAYS,
        description=f"days until it stops working ({DEFAULT_EXPIRY_DAYS} unless given); "
        "null: never",
    )
    project: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="limit it to this project (slug): it reaches nothing else",
    )
    role: Role | None = Field(
        default=None, description="act with at most this role (never above your own)"
    )


class TokenOut(BaseModel):
    """A token as listed: never the token, only the first characters that identify it."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None = Field(description="null: never expires")
    expired: bool
    project: str | None = Field(description="the project it is limited to; null: all yours")
    role: Role | None = Field(description="its role ceiling; null: your role")


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself: shown in this answer only, never again")
