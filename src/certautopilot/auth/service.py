"""Users, passwords and project roles (API tokens: :mod:`certautopilot.auth.tokens`)."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth import sessions as web_sessions
from certautopilot.auth.models import ROLES, Membership, User
from certautopilot.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from certautopilot.validation import has_control_characters

_hasher = PasswordHasher()


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if not local or not domain or " " in value or has_control_characters(value):
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
    """Hashes a new password; for a user who may be signed in, :func:`change_password`
    (which also ends their web sessions)."""
    if len(password) < 8:
        raise InvalidInput.field("password", "must be at least 8 characters")
    user.password_hash = _hasher.hash(password)


def change_password(
    session: Session, *, user: User, password: str, actor: str, keep_session: str | None = None
) -> int:
    """A new password, and every web session of the user ends (audited as
    ``session.revoked``), but ``keep_session``: a change made from a signed-in page may keep
    the session it was made from. Returns how many sessions ended."""
    set_password(user, password)
    return web_sessions.end_all(
        session,
        user_id=user.id,
        actor=actor,
        reason=web_sessions.EndReason.PASSWORD_CHANGED,
        keep=keep_session,
    )


#: Checked instead of a real hash when no user has the e-mail (or the user has no password),
#: so an unknown e-mail costs the same argon2 work as a known one: the answer's timing does
#: not tell who has an account. Made with this module's hasher parameters
#: (tests/unit/auth checks they still match); the password behind it was thrown away.
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$z9ia572AxcfEE6sqhk0H4g"
    "$ys/ja97h0R8buFOL8qAJGCtleFQKRn09Ar6uuETcbdU"
)


def verify_password(password_hash: str, password: str) -> bool:
    """The argon2 check (CPU work: call it off the event loop)."""
    try:
        return bool(_hasher.verify(password_hash, password))
    except VerificationError:
        return False


def check_password(session: Session, *, email: str, password: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    stored = user.password_hash if user is not None else None
    # Always one verification, of the user's hash or of the dummy.
    right = verify_password(stored or DUMMY_HASH, password)
    if user is None or stored is None or not right:
        raise Unauthenticated("wrong email or password")
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


def _other_admins(session: Session, *, project_id: str, user_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.project_id == project_id,
                Membership.role == "admin",
                Membership.user_id != user_id,
            )
        )
        or 0
    )


def set_membership(session: Session, *, project_id: str, user: User, role: str) -> Membership:
    """Adds ``user`` in ``role`` or changes their role; the last admin cannot step down."""
    if role not in ROLES:
        raise InvalidInput.field("role", f"must be one of {', '.join(ROLES)}")
    row = session.scalar(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user.id)
    )
    if row is None:
        row = Membership(project_id=project_id, user_id=user.id, role=role)
        session.add(row)
    else:
        if (
            row.role == "admin"
            and role != "admin"
            and not _other_admins(session, project_id=project_id, user_id=user.id)
        ):
            raise Conflict(
                f"{user.email} is the project's only admin: make someone else admin first"
            )
        row.role = role
    return row


def members_of(session: Session, *, project_id: str) -> list[tuple[User, str]]:
    """Every member of the project with their role, by email."""
    stmt = (
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project_id)
        .order_by(User.email)
    )
    return [(user, role) for user, role in session.execute(stmt).all()]


SELF_REMOVAL = (
    "this removes you from the project: you lose access to it at once; "
    "confirm that this is what you want"
)


def remove_membership(
    session: Session, *, project_id: str, email: str, actor: Actor, confirm_self: bool = False
) -> None:
    """Removes a member (audited as ``member.removed``); never the project's last admin,
    and the actor themselves only when ``confirm_self`` says they mean it."""
    require(actor, "admin", "Managing members")
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    row = (
        session.scalar(
            select(Membership).where(
                Membership.project_id == project_id, Membership.user_id == user.id
            )
        )
        if user is not None
        else None
    )
    if user is None or row is None:
        raise NotFound(f"{email} is not a member of this project")
    if row.role == "admin" and not _other_admins(session, project_id=project_id, user_id=user.id):
        raise Conflict(f"{user.email} is the project's only admin: make someone else admin first")
    if user.id == actor.user_id and not confirm_self:
        raise InvalidInput.field("confirm", SELF_REMOVAL)
    session.delete(row)
    audit.record(
        session,
        type=EventType.MEMBER_REMOVED,
        actor=actor.email,
        project_id=project_id,
        subject_type="project",
        subject_id=project_id,
        detail={"email": user.email, "role": row.role},
    )
    session.flush()
    left = select(func.count()).select_from(Membership).where(Membership.user_id == user.id)
    if not session.scalar(left):  # no project left: their web sessions end
        web_sessions.end_all(
            session,
            user_id=user.id,
            actor=actor.email,
            reason=web_sessions.EndReason.LEFT_LAST_PROJECT,
        )


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"no user {email.strip()}")
    return user
