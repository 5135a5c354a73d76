"""API tokens: made once (only a SHA-256 hash is stored), listed, revoked, and checked on
every API call with their expiry and scope.

A token acts as its owner. Its scope can only narrow that:

- ``expires_at``: after it the token is refused (401, saying when it expired). New tokens
  expire after 90 days unless asked otherwise; ``None`` (never) is for the bootstrap token
  of ``certautopilot token create`` and for tokens made before expiry existed.
- ``project_id``: the token reaches that project's ``/projects/{slug}/…`` routes and the
  read-only catalog (plugins, DNS providers, the project list showing that project), and
  nothing else; it is deleted with the project.
- ``role``: a ceiling — in each project the token acts with the lower of it and its owner's
  role. Within one project it cannot exceed the owner's role there (refused when made).

A scoped token (either limit) never carries instance-admin rights and cannot make or revoke
tokens: a narrow token must not be able to mint a wide one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth import service as auth
from certautopilot.auth.models import ROLES, ApiToken, User
from certautopilot.clock import as_utc, utcnow
from certautopilot.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from certautopilot.projects.models import Project

TOKEN_PREFIX = "cap_"
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True)
class TokenGrant:
    """Who a presented token acts for, and within which limits."""

    user: User
    token_id: str
    project_id: str | None = None
    project_slug: str | None = None
    role: str | None = None

    @property
    def scoped(self) -> bool:
        return self.project_id is not None or self.role is not None

    def limit(self, role: str) -> str:
        """``role`` (the owner's in a project) under this token's ceiling."""
        if self.role is None:
            return role
        return min(role, self.role, key=ROLES.index)

    def describe(self) -> str:
        """The scope in words, for refusals: "project web, role viewer"."""
        parts = [f"project {self.project_slug}"] if self.project_slug else []
        return ", ".join(parts + ([f"role {self.role}"] if self.role else []))


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _scope_project(session: Session, user: User, slug: str, role: str | None) -> Project:
    """The project a new token is limited to: one of the owner's, and a ceiling no higher
    than the owner's role there."""
    project = session.scalar(select(Project).where(Project.slug == slug.strip()))
    own = auth.role_in(session, user_id=user.id, project_id=project.id) if project else None
    if project is not None and own is None and user.is_instance_admin:
        own = "admin"
    if project is None or own is None:
        raise InvalidInput.field("project", f"you are not a member of a project {slug!r}")
    if role is not None and ROLES.index(role) > ROLES.index(own):
        raise InvalidInput.field(
            "role", f"you are {own} in {project.slug}: a token cannot have a higher role"
        )
    return project


def create_token(
    session: Session,
    *,
    user: User,
    name: str = "",
    expires_in_days: int | None = None,
    project: str | None = None,
    role: str | None = None,
    now: datetime | None = None,
) -> str:
    """Returns the token once; only its hash is stored. Audited as ``token.created`` with
    its scope. ``expires_in_days`` None: never expires; ``project`` a slug."""
    name = name.strip()
    if len(name) > 200:
        raise InvalidInput.field("name", "must be at most 200 characters")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput.field(
            "expires_in_days", f"must be 1 to {MAX_EXPIRY_DAYS} days, or null for never"
        )
    if role is not None and role not in ROLES:
        raise InvalidInput.field("role", f"must be one of {', '.join(ROLES)}")
    scoped_to = _scope_project(session, user, project, role) if project else None
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        token_hash=_hash_token(token),
        prefix=token[:10],
        name=name,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        project_id=scoped_to.id if scoped_to else None,
        role=role,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        type=EventType.TOKEN_CREATED,
        actor=user.email,
        project_id=None,
        subject_type="user",
        subject_id=user.id,
        detail={
            "token_id": row.id,
            "name": name,
            "prefix": row.prefix,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "project": scoped_to.slug if scoped_to else None,
            "role": role,
        },
    )
    return token


def list_tokens(session: Session, *, user: User) -> list[tuple[ApiToken, str | None]]:
    """The user's tokens, newest first, each with the slug of the project it is limited to
    (rows hold only the hash and a short prefix)."""
    stmt = (
        select(ApiToken, Project.slug)
        .outerjoin(Project, Project.id == ApiToken.project_id)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    )
    return [(row, slug) for row, slug in session.execute(stmt).all()]


def revoke_token(session: Session, *, user: User, token_id: str) -> ApiToken:
    """Deletes one of the user's own tokens; it stops working at once. ``token.revoked``."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("no such API token of yours")
    audit.record(
        session,
        type=EventType.TOKEN_REVOKED,
        actor=user.email,
        project_id=None,
        subject_type="user",
        subject_id=user.id,
        detail={"token_id": row.id, "name": row.name, "prefix": row.prefix},
    )
    session.delete(row)
    session.flush()
    return row


def is_expired(row: ApiToken, now: datetime | None = None) -> bool:
    return row.expires_at is not None and as_utc(row.expires_at) <= (now or utcnow())


def grant_for_token(session: Session, token: str, now: datetime | None = None) -> TokenGrant:
    """The owner and limits of a presented token; 401 if unknown or expired."""
    found = session.execute(
        select(ApiToken, Project.slug)
        .outerjoin(Project, Project.id == ApiToken.project_id)
        .where(ApiToken.token_hash == _hash_token(token))
    ).first()
    if found is None:
        raise Unauthenticated("the API token is not valid")
    row, slug = found
    if is_expired(row, now):
        assert row.expires_at is not None
        when = as_utc(row.expires_at).strftime("%Y-%m-%d %H:%M UTC")
        raise Unauthenticated(f"the API token expired on {when}: create a new one")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthenticated("the API token is not valid")
    return TokenGrant(user, row.id, row.project_id, slug, row.role)


def user_for_token(session: Session, token: str) -> User:
    """The owner of a presented token (its limits: :func:`grant_for_token`)."""
    return grant_for_token(session, token).user


#: What a scoped token may call outside ``/projects/{slug}/…``: the read-only catalog.
#: Paths as the routes declare them, below ``/api/v1``.
OUTSIDE_PROJECTS = frozenset({("GET", "/projects"), ("GET", "/plugins"), ("GET", "/dns-providers")})


def check_reach(grant: TokenGrant, *, method: str, route: str, project: str | None) -> None:
    """Refuses (403) a call the token's scope does not reach. ``route`` is the route's
    declared path (``/projects/{project}/zones``), ``project`` the slug in the URL."""
    if not grant.scoped:
        return
    if project is not None:
        if grant.project_slug is None or project == grant.project_slug:
            return
        raise Forbidden(
            f"this token is limited to {grant.describe()}: it cannot reach project {project}"
        )
    if (method if method != "HEAD" else "GET", route) in OUTSIDE_PROJECTS:
        return
    raise Forbidden(
        f"this token is limited to {grant.describe()}: {method} {route} needs a token "
        "without a project or role limit"
    )
