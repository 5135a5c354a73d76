from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=4000)


class RequestOut(BaseModel):
    id: str
    certificate_id: str
    status: str
    requester: str
    request: dict[str, Any]
    warnings: list[dict[str, Any]]
    override: dict[str, Any] | None
    comment: str | None
    decided_by: str | None
    decided_at: datetime | None
    expires_at: datetime
    created_at: datetime
    can_decide: bool
    cannot_decide_reason: str | None


class RequestList(BaseModel):
    items: list[RequestOut]
