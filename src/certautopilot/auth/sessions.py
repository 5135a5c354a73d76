"""Server-side web sessions: the cookie carries a random token, the database its SHA-256.

A session ends when it is older than :data:`LIFETIME`, when it was not used for the idle
timeout (``CERTAUTOPILOT_SESSION_IDLE_MINUTES``), or when its row is deleted: on sign-out,
on a password change, when the user leaves their last project, or by an instance admin.
Each request that uses a session moves ``last_seen_at`` forward, but writes at most once
per :data:`TOUCH_EVERY`, so browsing does not turn every page view into a write.
Every function takes ``now``: the idle rules are tested with a moved clock, not a sleep.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.models import User, WebSession
from certautopilot.clock import as_utc
from certautopilot.errors import NotFound

#: The absolute lifetime of a session, however busy (as the signed cookie had before).
LIFETIME = timedelta(hours=12)
#: At most one ``last_seen_at`` write per session in this time.
TOUCH_EVERY = timedelta(minutes=1)


class EndReason(StrEnum):
    """Why a session was ended (``session.revoked`` events say it in ``detail.reason``)."""

    SIGNED_OUT = "signed_out"
    PASSWORD_CHANGED = "password_changed"
    LEFT_LAST_PROJECT = "left_last_project"
    ADMIN = "revoked_by_admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: Session,
    *,
    user: User,
    now: datetime,
    idle: timedelta,
    client: str = "",
    user_agent: str = "",
) -> str:
    """A new session for ``user``; returns its token (for the cookie) once.

    Rows of sessions that have run out (any user's) are cleared here, so the table holds
    roughly the live sessions without a sweeper process."""
    purge_idle(session, now=now, idle=idle)
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            user_id=user.id,
            token_hash=hash_token(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
            client=client[:64],
            user_agent=user_agent[:200],
        )
    )
    session.flush()
    return token


def resolve(session: Session, token: str, *, now: datetime, idle: timedelta) -> WebSession | None:
    """The live session of ``token`` or None. A session that has run out is deleted; a live
    one has ``last_seen_at`` moved to ``now`` when the last move is over a minute old (the
    caller commits)."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(token)))
    if row is None:
        return None
    if as_utc(row.expires_at) <= now or as_utc(row.last_seen_at) <= now - idle:
        session.delete(row)
        return None
    if now - as_utc(row.last_seen_at) >= TOUCH_EVERY:
        # Conditional, so two requests racing at the minute mark write once.
        session.execute(
            update(WebSession)
            .where(WebSession.id == row.id, WebSession.last_seen_at < now - TOUCH_EVERY / 2)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
        row.last_seen_at = now
    return row


def active(
    session: Session, *, now: datetime, idle: timedelta, user_id: str | None = None
) -> list[tuple[WebSession, str]]:
    """Live sessions with their user's email, most recently used first."""
    stmt = (
        select(WebSession, User.email)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.expires_at > now, WebSession.last_seen_at > now - idle)
        .order_by(WebSession.last_seen_at.desc(), WebSession.id)
    )
    if user_id is not None:
        stmt = stmt.where(WebSession.user_id == user_id)
    return [(row, email) for row, email in session.execute(stmt).all()]


def _audit(
    session: Session, *, user_id: str, actor: str, reason: EndReason, ids: list[str]
) -> None:
    audit.record(
        session,
        type=EventType.SESSION_REVOKED,
        actor=actor,
        project_id=None,
        subject_type="user",
        subject_id=user_id,
        detail={"sessions": ids, "reason": reason.value},
    )


def end(session: Session, token: str, *, actor: str) -> None:
    """Sign-out: the session of ``token`` ends (a cookie copied before stops working)."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(token)))
    if row is None:
        return
    _audit(session, user_id=row.user_id, actor=actor, reason=EndReason.SIGNED_OUT, ids=[row.id])
    session.delete(row)
    session.flush()


def end_all(
    session: Session, *, user_id: str, actor: str, reason: EndReason, keep: str | None = None
) -> int:
    """Ends every session of the user but ``keep`` (a session id); audited when any ended."""
    stmt = select(WebSession.id).where(WebSession.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(WebSession.id != keep)
    ids = list(session.scalars(stmt))
    if ids:
        session.execute(delete(WebSession).where(WebSession.id.in_(ids)))
        _audit(session, user_id=user_id, actor=actor, reason=reason, ids=ids)
        session.flush()
    return len(ids)


def revoke(session: Session, *, session_id: str, actor: str) -> WebSession:
    """An instance admin ends one session by its id."""
    row = session.get(WebSession, session_id)
    if row is None:
        raise NotFound("no such web session")
    _audit(session, user_id=row.user_id, actor=actor, reason=EndReason.ADMIN, ids=[row.id])
    session.delete(row)
    session.flush()
    return row


def purge_idle(session: Session, *, now: datetime, idle: timedelta) -> int:
    """Deletes the rows of sessions that have run out (idle or past their lifetime)."""
    result = session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - idle)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
