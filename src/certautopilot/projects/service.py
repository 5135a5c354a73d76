from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth import service as auth
from certautopilot.auth.models import User
from certautopilot.config import ProjectCreators
from certautopilot.errors import Conflict, Forbidden, InvalidInput, NotFound
from certautopilot.projects.models import Project

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def create_project(
    session: Session,
    *,
    slug: str,
    name: str,
    creator: User,
    creators: ProjectCreators = ProjectCreators.ADMINS,
) -> Project:
    """A new project with ``creator`` as its admin, if this instance lets them create one."""
    if creators is ProjectCreators.ADMINS and not creator.is_instance_admin:
        raise Forbidden(
            "Only instance admins may create projects on this instance "
            "(CERTAUTOPILOT_PROJECT_CREATORS=admins); ask one to create it and add you"
        )
    errors = []
    if not SLUG.match(slug or ""):
        errors.append(("slug", "use 1-64 lower-case letters, digits and inner hyphens"))
    if not (name or "").strip():
        errors.append(("name", "is required"))
    if errors:
        raise InvalidInput("the project is not valid", errors)
    if session.scalar(select(Project.id).where(Project.slug == slug)):
        raise Conflict(f"a project with slug {slug!r} exists already")
    project = Project(slug=slug, name=name.strip())
    session.add(project)
    session.flush()
    auth.set_membership(session, project_id=project.id, user=creator, role="admin")
    audit.record(
        session,
        type=EventType.PROJECT_CREATED,
        actor=creator.email,
        project_id=project.id,
        subject_type="project",
        subject_id=project.id,
        detail={"slug": slug},
    )
    return project


def project_for_member(session: Session, *, slug: str, user: User) -> tuple[Project, str]:
    """The project and the user's role in it; NotFound if missing or not a member."""
    project = session.scalar(select(Project).where(Project.slug == slug))
    role = None
    if project is not None:
        role = auth.role_in(session, user_id=user.id, project_id=project.id)
        if role is None and user.is_instance_admin:
            role = "admin"
    if project is None or role is None:
        raise NotFound(f"no project {slug!r}")
    return project, role


def projects_of(session: Session, *, user: User) -> list[Project]:
    from certautopilot.auth.models import Membership

    stmt = (
        select(Project)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.slug)
    )
    return list(session.scalars(stmt))


def get_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound("no such project")
    return project


def set_member(
    session: Session, *, project_id: str, email: str, role: str, actor: auth.Actor
) -> User:
    """Adds a member or changes a member's role (audited as ``member.set``); the project's
    last admin cannot step down. The caller commits."""
    auth.require(actor, "admin", "Managing members")
    user = auth.ensure_user(session, email=email)
    auth.set_membership(session, project_id=project_id, user=user, role=role)
    audit.record(
        session,
        type=EventType.MEMBER_SET,
        actor=actor.email,
        project_id=project_id,
        subject_type="project",
        subject_id=project_id,
        detail={"email": user.email, "role": role},
    )
    return user
