"""The JSON shapes of web sessions as an instance admin sees them (never any token)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, description="the script or machine that uses it"
    )


class TokenOut(BaseModel):
    """A token as listed: never the token, only the first characters that identify it."""

    id: str
    name: str
    prefix: str
    created_at: datetime


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself: shown in this answer only, never again")
