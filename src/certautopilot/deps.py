"""The one dependency module of the adapters (API routes and web views alike).

The application state, one database session per request, the caller (API token) and the
project context live here, below ``api/`` and ``web/``, so the web UI never imports the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from dns.resolver import Resolver
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.auth.models import User
from certautopilot.auth.service import Actor
from certautopilot.auth.tokens import TokenGrant
from certautopilot.clock import utcnow
from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import NotFound, Unauthenticated
from certautopilot.projects import service as projects
from certautopilot.projects.models import Project
from certautopilot.workflows.launcher import DbosLauncher


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    kek: KeyEncryptionKey
    launcher: DbosLauncher


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.cap
    return state


State = Annotated[AppState, Depends(get_state)]


def get_session(state: State) -> Iterator[Session]:
    """One session per request; a route or view that writes calls ``session.commit()``.

    The commit stays in the handler, before it builds its response: a commit-on-success
    dependency would run after the response was built, and the services leave Python-side
    column defaults (``created_at``, ``updated_at``) to the flush, so the response would
    show them empty or stale. Multi-transaction sequences live in ``workflows.commands``."""
    with state.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def get_clock() -> Callable[[], datetime]:
    """The clock of request handlers' time rules (session idle timeout, sign-in lockout):
    a dependency so a test moves time with ``app.dependency_overrides`` instead of sleeping."""
    return utcnow


Clock = Annotated[Callable[[], datetime], Depends(get_clock)]


#: What an API request without a token is told (by ``get_grant`` and ``api.http_guard``).
BEARER_HINT = "send an API token as 'Authorization: Bearer <token>'"


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


API_PREFIX = "/api/v1"


def get_grant(request: Request, session: DbSession) -> TokenGrant:
    """The caller's token: its owner and limits, checked against the route called."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise Unauthenticated(BEARER_HINT)
    grant = tokens.grant_for_token(session, token)
    route = getattr(request.scope.get("route"), "path", "")
    tokens.check_reach(
        grant,
        method=request.method,
        route=route.removeprefix(API_PREFIX),
        project=request.path_params.get("project"),
    )
    return grant


Grant = Annotated[TokenGrant, Depends(get_grant)]


def get_user(grant: Grant) -> User:
    return grant.user


CurrentUser = Annotated[User, Depends(get_user)]


@dataclass(frozen=True)
class ProjectContext:
    project: Project
    actor: Actor


def get_project(project: str, session: DbSession, grant: Grant) -> ProjectContext:
    """The project in the URL and the caller's role in it, under the token's ceiling."""
    row, role = projects.project_for_member(session, slug=project, user=grant.user)
    if grant.scoped and row.id != grant.project_id and not _member(session, grant, row):
        raise NotFound(f"no project {project!r}")  # an admin's reach is for unscoped tokens
    actor = Actor(user_id=grant.user.id, email=grant.user.email, role=grant.limit(role))
    return ProjectContext(row, actor)


InProject = Annotated[ProjectContext, Depends(get_project)]


def _member(session: Session, grant: TokenGrant, project: Project) -> bool:
    return auth.role_in(session, user_id=grant.user.id, project_id=project.id) is not None


def get_dns_resolver() -> Resolver:
    """The resolver zone suggestions walk SOA records with: the system's. A dependency so
    a test can point it at its own DNS server (``app.dependency_overrides``)."""
    return Resolver()


DnsResolver = Annotated[Resolver, Depends(get_dns_resolver)]
