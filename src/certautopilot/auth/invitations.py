"""One-time sign-in links: how a person gets a web password without a terminal.

``certautopilot user invite`` (and ``make demo``) prints one for the first admin; a project
admin who adds a member in the web UI is shown one to send. Whoever opens the link chooses
the password and is signed in; the link then stops working. Only the SHA-256 of its token
is stored (as for sessions), so a copy of the database opens nothing. A new link for the
same user replaces the unused ones.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth import service as auth
from certautopilot.auth.models import Invitation, User
from certautopilot.auth.sessions import hash_token
from certautopilot.clock import as_utc

#: How long a link works when nobody opens it.
LIFETIME = timedelta(days=7)


def create(session: Session, *, user: User, actor: str, now: datetime) -> str:
    """A new link token for ``user`` (returned once; only its hash is kept)."""
    session.execute(
        delete(Invitation).where(Invitation.user_id == user.id, Invitation.used_at.is_(None))
    )
    token = secrets.token_urlsafe(32)
    session.add(
        Invitation(
            user_id=user.id,
            token_hash=hash_token(token),
            created_by=actor,
            created_at=now,
            expires_at=now + LIFETIME,
        )
    )
    audit.record(
        session,
        type=EventType.INVITATION_CREATED,
        actor=actor,
        project_id=None,
        subject_type="user",
        subject_id=user.id,
        detail={"email": user.email, "expires_at": (now + LIFETIME).isoformat()},
    )
    session.flush()
    return token


def open_invitation(
    session: Session, token: str, *, now: datetime
) -> tuple[Invitation, User] | None:
    """The unused, unexpired invitation of ``token`` and its user, or None."""
    row = session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))
    if row is None or row.used_at is not None or as_utc(row.expires_at) <= now:
        return None
    user = session.get(User, row.user_id)
    return (row, user) if user is not None else None


def accept(session: Session, token: str, *, password: str, now: datetime) -> User | None:
    """Sets the password the link's holder chose and uses the link up; None when the link
    does not work (any more). A too-short password raises ``InvalidInput`` (``password``)."""
    found = open_invitation(session, token, now=now)
    if found is None:
        return None
    row, user = found
    auth.set_password(user, password)  # checked before the link is used up
    claimed = session.execute(
        update(Invitation)
        .where(Invitation.id == row.id, Invitation.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:  # a request racing this one used it
        return None
    auth.change_password(session, user=user, password=password, actor=user.email)
    audit.record(
        session,
        type=EventType.INVITATION_ACCEPTED,
        actor=user.email,
        project_id=None,
        subject_type="user",
        subject_id=user.id,
        detail={"email": user.email},
    )
    return user


def pending(session: Session, *, user_ids: list[str], now: datetime) -> dict[str, datetime]:
    """When the unused, unexpired link of each of ``user_ids`` expires (users without one
    are left out)."""
    if not user_ids:
        return {}
    rows = session.scalars(
        select(Invitation).where(Invitation.user_id.in_(user_ids), Invitation.used_at.is_(None))
    )
    return {r.user_id: as_utc(r.expires_at) for r in rows if as_utc(r.expires_at) > now}
