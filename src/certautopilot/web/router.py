"""The server-rendered web UI: one router for the app, and the static files."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from certautopilot.web.common import HERE
from certautopilot.web.views import (
    auth,
    certificates,
    requests,
    settings_issuers,
    settings_project,
    settings_zones,
    tokens,
)

router = APIRouter()
for _module in (
    auth,
    certificates,
    requests,
    settings_issuers,
    settings_zones,
    settings_project,
    tokens,
):
    router.include_router(_module.router)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
