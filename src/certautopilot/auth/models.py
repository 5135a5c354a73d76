from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id

ROLES = ("viewer", "operator", "approver", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    is_instance_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: None: never expires (tokens made before expiry existed, and the bootstrap token)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    #: None: every project of its owner; else this one only (the token goes with it)
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None
    )
    #: None: the owner's role; else at most this one (one of ``ROLES``)
    role: Mapped[str | None] = mapped_column(String(16), default=None)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))


class WebSession(Base):
    """A signed-in web session. Only the SHA-256 of its cookie token is stored, so a copy
    of the database cannot sign anyone in; deleting the row ends the session at once."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    #: The client address and a short user-agent, for the admin's list.
    client: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class SignInCounter(Base):
    """The sign-in throttle's count for one account or client address (``auth.throttle``).

    The key is a SHA-256 of ``<kind>:<e-mail or address>``: e-mails typed by strangers are
    not stored as such. In the database so that every server process sees the same count."""

    __tablename__ = "signin_counters"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class Invitation(Base):
    """A one-time sign-in link: whoever opens it chooses the user's password and is signed
    in. Only the SHA-256 of the link's token is stored; it works once, until it expires."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
