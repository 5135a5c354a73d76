"""Users, API tokens (stored as SHA-256 hashes) and project roles."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.auth.models import ROLES, ApiToken, Membership, User
from certautopilot.errors import Forbidden, InvalidInput, NotFound, Unauthenticated

TOKEN_PREFIX = "cap_"
_hasher = PasswordHasher()


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if not local or not domain or " " in value:
        raise InvalidInput.field("email", "must be an email address such as ops@example.com")
    return value


def ensure_user(session: Session, *, email: str, instance_admin: bool = False) -> User:
    email = normalize_email(email)
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, is_instance_admin=instance_admin)
        session.add(user)
        session.flush()
    elif instance_admin and not user.is_instance_admin:
        user.is_instance_admin = True
    return user


def set_password(user: User, password: str) -> None:
    if len(password) < 8:
        raise InvalidInput.field("password", "must be at least 8 characters")
    user.password_hash = _hasher.hash(password)


def check_password(session: Session, *, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.password_hash is None:
        raise Unauthenticated("wrong email or password")
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError as exc:
        raise Unauthenticated("wrong email or password") from exc
    return user


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, user: User, name: str = "") -> str:
    """Returns the token once; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, token_hash=_hash_token(token), prefix=token[:10], name=name)
    )
    return token


def user_for_token(session: Session, token: str) -> User:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(token)))
    if row is None:
        raise Unauthenticated("the API token is not valid")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthenticated("the API token is not valid")
    return user


@dataclass(frozen=True)
class Actor:
    """Who is acting, and in which role within the project at hand."""

    user_id: str
    email: str
    role: str

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def role_in(session: Session, *, user_id: str, project_id: str) -> str | None:
    return session.scalar(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.project_id == project_id
        )
    )


def require(actor: Actor, role: str, action: str) -> None:
    if not actor.at_least(role):
        raise Forbidden(f"{action} needs the {role} role in this project; you are {actor.role}")


def set_membership(session: Session, *, project_id: str, user: User, role: str) -> Membership:
    if role not in ROLES:
        raise InvalidInput.field("role", f"must be one of {', '.join(ROLES)}")
    row = session.scalar(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user.id)
    )
    if row is None:
        row = Membership(project_id=project_id, user_id=user.id, role=role)
        session.add(row)
    else:
        row.role = role
    return row


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user
