from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from certautopilot import netguard
from certautopilot.api import docs, problems
from certautopilot.api.http_guard import HttpGuard
from certautopilot.api.request_id import RequestId
from certautopilot.api.routes import audit as audit_routes
from certautopilot.api.routes import (
    certificates,
    governance,
    health,
    imports,
    issuers,
    plugins,
    projects,
    renewals,
    sessions,
    targets,
    tokens,
    versions,
    zones,
)
from certautopilot.api.security_headers import SecurityHeaders
from certautopilot.audit import forward as audit_forward
from certautopilot.config import Settings
from certautopilot.crypto.kek import load_kek
from certautopilot.db import models as _models  # noqa: F401  (every table registered)
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.deps import AppState
from certautopilot.workflows.launcher import DbosLauncher


class App(FastAPI):
    """The FastAPI app with the security headers outside its whole middleware stack, so
    they are on every response, the last-resort 500 included."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    netguard.install(settings.reach)  # what user-supplied hosts, URLs and paths may reach

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        kek = load_kek(settings)
        sessions = make_sessionmaker(engine)
        forwarder = audit_forward.install(sessions, kek, settings)
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            kek=kek,
            launcher=DbosLauncher(engine),
        )
        app.state.cap = state
        try:
            yield
        finally:
            if forwarder is not None:
                forwarder.close()
            state.launcher.close()
            engine.dispose()

    app = App(
        title="CertAutoPilot",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # docs.install: the Swagger UI from the package, no CDN
        redoc_url=None,
    )
    problems.install(app)
    app.add_middleware(HttpGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestId)  # outermost of ours: HttpGuard's answers carry the id
    for module in (
        projects,
        issuers,
        zones,
        certificates,
        versions,
        governance,
        targets,
        plugins,
        sessions,
        tokens,
        renewals,
        imports,
        audit_routes,
    ):
        app.include_router(module.router, prefix="/api/v1")
    plugins.install_openapi(app)
    docs.install(app)

    from certautopilot.web.router import install as install_web

    install_web(app)  # the server-rendered UI and /static

    app.include_router(health.router)
    if settings.metrics_address is None:
        app.include_router(health.metrics_router())

    return app
