from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from certautopilot import netguard
from certautopilot.api import problems
from certautopilot.api.routes import (
    certificates,
    governance,
    issuers,
    plugins,
    projects,
    targets,
    versions,
    zones,
)
from certautopilot.config import Settings
from certautopilot.crypto.kek import load_kek
from certautopilot.db import models as _models  # noqa: F401  (every table registered)
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.deps import AppState
from certautopilot.workflows.launcher import DbosLauncher


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    netguard.install(settings.reach)  # what user-supplied hosts, URLs and paths may reach

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            kek=load_kek(settings),
            launcher=DbosLauncher(engine),
        )
        app.state.cap = state
        try:
            yield
        finally:
            state.launcher.close()
            engine.dispose()

    app = FastAPI(title="CertAutoPilot", version="0.1.0", lifespan=lifespan)
    problems.install(app)
    for module in (projects, issuers, zones, certificates, versions, governance, targets, plugins):
        app.include_router(module.router, prefix="/api/v1")
    plugins.install_openapi(app)

    from certautopilot.web.router import install as install_web

    install_web(app)  # the server-rendered UI and /static

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
