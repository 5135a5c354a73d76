from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from certautopilot.api.deps import CurrentUser, DbSession, InProject
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth import service as auth
from certautopilot.projects import service as projects

router = APIRouter(tags=["projects"])


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(max_length=64)
    name: str = Field(max_length=200)


class ProjectOut(BaseModel):
    id: str
    slug: str
    name: str


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    role: str


class MemberOut(BaseModel):
    email: str
    role: str


@router.post("/projects", status_code=status.HTTP_201_CREATED, response_model=ProjectOut)
def create_project(body: ProjectIn, session: DbSession, user: CurrentUser) -> ProjectOut:
    project = projects.create_project(session, slug=body.slug, name=body.name, creator=user)
    session.commit()
    return ProjectOut(id=project.id, slug=project.slug, name=project.name)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(session: DbSession, user: CurrentUser) -> list[ProjectOut]:
    return [
        ProjectOut(id=p.id, slug=p.slug, name=p.name)
        for p in projects.projects_of(session, user=user)
    ]


@router.get("/projects/{project}", response_model=ProjectOut)
def get_project(ctx: InProject) -> ProjectOut:
    p = ctx.project
    return ProjectOut(id=p.id, slug=p.slug, name=p.name)


@router.post(
    "/projects/{project}/members", status_code=status.HTTP_201_CREATED, response_model=MemberOut
)
def add_member(body: MemberIn, ctx: InProject, session: DbSession) -> MemberOut:
    auth.require(ctx.actor, "admin", "Managing members")
    user = auth.ensure_user(session, email=body.email)
    auth.set_membership(session, project_id=ctx.project.id, user=user, role=body.role)
    audit.record(
        session,
        type=EventType.MEMBER_SET,
        actor=ctx.actor.email,
        project_id=ctx.project.id,
        subject_type="project",
        subject_id=ctx.project.id,
        detail={"email": user.email, "role": body.role},
    )
    session.commit()
    return MemberOut(email=user.email, role=body.role)


@router.get("/projects/{project}/members", response_model=list[MemberOut])
def list_members(ctx: InProject, session: DbSession) -> list[MemberOut]:
    return [
        MemberOut(email=user.email, role=role)
        for user, role in auth.members_of(session, project_id=ctx.project.id)
    ]


@router.delete("/projects/{project}/members/{email}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(email: str, ctx: InProject, session: DbSession) -> None:
    """Removes a member; the project's last admin cannot be removed (409)."""
    auth.remove_membership(session, project_id=ctx.project.id, email=email, actor=ctx.actor)
    session.commit()
