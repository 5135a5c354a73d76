"""The one dependency module of the adapters (API routes and web views alike).

The application state, one database session per request, the caller (API token) and the
project context live here, below ``api/`` and ``web/``, so the web UI never imports the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.auth import service as auth
from certautopilot.auth.models import User
from certautopilot.auth.service import Actor
from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import Unauthenticated
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
    """One session per request; a route or view that writes takes ``WriteSession``."""
    with state.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def get_write_session(session: DbSession) -> Iterator[Session]:
    """The request's session, committed when the route or view returns without raising.

    For the routes whose whole job is "call a service, commit". Function-scoped: FastAPI
    commits after the handler returns and *before* the response is sent, so a commit that
    fails (SQLite busy: 503, nothing written) replaces the response instead of following a
    success that was already sent. When the handler raises, nothing is committed and the
    session is rolled back as it closes. A command in ``workflows.commands`` commits by
    itself; the commit here then finds nothing to do.
    """
    yield session
    session.commit()


WriteSession = Annotated[Session, Depends(get_write_session, scope="function")]


def get_user(request: Request, session: DbSession) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an API token as 'Authorization: Bearer <token>'")
    return auth.user_for_token(session, token.strip())


CurrentUser = Annotated[User, Depends(get_user)]


@dataclass(frozen=True)
class ProjectContext:
    project: Project
    actor: Actor


def get_project(project: str, session: DbSession, user: CurrentUser) -> ProjectContext:
    row, role = projects.project_for_member(session, slug=project, user=user)
    return ProjectContext(row, Actor(user_id=user.id, email=user.email, role=role))


InProject = Annotated[ProjectContext, Depends(get_project)]
