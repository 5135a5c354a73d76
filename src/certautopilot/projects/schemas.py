"""The JSON shapes of projects and their members (the API's and the web forms' input)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(max_length=64)
    name: str = Field(max_length=200)


class ProjectOut(BaseModel):
    id: str
    slug: str
    name: str


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    role: str


class MemberOut(BaseModel):
    email: str
    role: str
