"""The server-rendered web UI: one router for the app, and the static files."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from certautopilot.web.common import HERE
from certautopilot.web.views import (
    auth,
    certificates,
    imports,
    requests,
    settings_issuers,
    settings_project,
    settings_targets,
    settings_zones,
    tokens,
)

router = APIRouter()
for _module in (
    auth,
    certificates,
    imports,
    requests,
    settings_issuers,
    settings_zones,
    settings_targets,
    settings_project,
    tokens,
):
    router.include_router(_module.router)


class HideInvitationTokens(logging.Filter):
    """A one-time sign-in link is a secret until used: the access log shows
    ``/invite/…`` instead of its token (uvicorn's record args: client, method, path, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and str(args[2]).startswith("/invite/"):
            record.args = (*args[:2], "/invite/…", *args[3:])
        return True


def install(app: FastAPI) -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideInvitationTokens) for f in access.filters):
        access.addFilter(HideInvitationTokens())
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
