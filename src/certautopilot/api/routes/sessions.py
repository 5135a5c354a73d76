"""Instance admins list and end web sessions (``/api/v1/instance/sessions``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from certautopilot.auth import service as auth
from certautopilot.auth import sessions as web_sessions
from certautopilot.auth.models import User, WebSession
from certautopilot.auth.schemas import SessionsRevoked, WebSessionList, WebSessionOut
from certautopilot.clock import as_utc
from certautopilot.deps import Clock, CurrentUser, DbSession, State
from certautopilot.errors import Forbidden

router = APIRouter(tags=["instance"])
BASE = "/instance/sessions"


def _require_instance_admin(user: User) -> None:
    if not user.is_instance_admin:
        raise Forbidden("managing web sessions is for instance admins")


def session_out(row: WebSession, email: str, idle: timedelta) -> WebSessionOut:
    return WebSessionOut(
        id=row.id,
        email=email,
        created_at=as_utc(row.created_at),
        last_seen_at=as_utc(row.last_seen_at),
        idle_expires_at=min(as_utc(row.last_seen_at) + idle, as_utc(row.expires_at)),
        expires_at=as_utc(row.expires_at),
        client=row.client,
        user_agent=row.user_agent,
    )


@router.get(BASE, response_model=WebSessionList)
def list_sessions(
    session: DbSession,
    user: CurrentUser,
    state: State,
    clock: Clock,
    email: str | None = Query(None, max_length=320, description="Only this user's sessions."),
) -> WebSessionList:
    """Live web sessions, most recently used first: who, from where, until when."""
    _require_instance_admin(user)
    idle = timedelta(minutes=state.settings.session_idle_minutes)
    user_id = auth.user_by_email(session, email).id if email else None
    rows = web_sessions.active(session, now=clock(), idle=idle, user_id=user_id)
    return WebSessionList(items=[session_out(row, address, idle) for row, address in rows])


@router.delete(BASE + "/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_session(
    session_id: Annotated[str, Path(max_length=64)], session: DbSession, user: CurrentUser
) -> Response:
    """Ends one session at once (audited as ``session.revoked``)."""
    _require_instance_admin(user)
    web_sessions.revoke(session, session_id=session_id, actor=user.email)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(BASE, response_model=SessionsRevoked)
def revoke_sessions_of(
    session: DbSession,
    user: CurrentUser,
    email: str = Query(..., max_length=320, description="Whose sessions to end (required)."),
) -> SessionsRevoked:
    """Ends every session of one user (audited as ``session.revoked``)."""
    _require_instance_admin(user)
    target = auth.user_by_email(session, email)
    count = web_sessions.end_all(
        session, user_id=target.id, actor=user.email, reason=web_sessions.EndReason.ADMIN
    )
    session.commit()
    return SessionsRevoked(revoked=count)
