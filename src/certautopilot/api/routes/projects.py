from __future__ import annotations

from fastapi import APIRouter, Query, status

from certautopilot.auth import service as auth
from certautopilot.deps import CurrentUser, DbSession, Grant, InProject, State
from certautopilot.projects import service as projects
from certautopilot.projects.schemas import MemberIn, MemberOut, ProjectIn, ProjectOut

router = APIRouter(tags=["projects"])


@router.post("/projects", status_code=status.HTTP_201_CREATED, response_model=ProjectOut)
def create_project(
    body: ProjectIn, session: DbSession, user: CurrentUser, state: State
) -> ProjectOut:
    """Instance admins only, unless ``CERTAUTOPILOT_PROJECT_CREATORS=everyone`` (403)."""
    project = projects.create_project(
        session,
        slug=body.slug,
        name=body.name,
        creator=user,
        creators=state.settings.project_creators,
    )
    session.commit()
    return ProjectOut(id=project.id, slug=project.slug, name=project.name)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(session: DbSession, grant: Grant) -> list[ProjectOut]:
    """The caller's projects; a token limited to one project sees that one."""
    found = projects.projects_of(session, user=grant.user)
    return [
        ProjectOut(id=p.id, slug=p.slug, name=p.name)
        for p in found
        if grant.project_id in (None, p.id)
    ]


@router.get("/projects/{project}", response_model=ProjectOut)
def get_project(ctx: InProject) -> ProjectOut:
    p = ctx.project
    return ProjectOut(id=p.id, slug=p.slug, name=p.name)


@router.post(
    "/projects/{project}/members", status_code=status.HTTP_201_CREATED, response_model=MemberOut
)
def add_member(body: MemberIn, ctx: InProject, session: DbSession) -> MemberOut:
    user = projects.set_member(
        session, project_id=ctx.project.id, email=body.email, role=body.role, actor=ctx.actor
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
def remove_member(
    email: str,
    ctx: InProject,
    session: DbSession,
    confirm: bool = Query(
        default=False, description="required (true) when you remove yourself: you lose access"
    ),
) -> None:
    """Removes a member; the project's last admin cannot be removed (409); removing
    yourself needs ``confirm=true`` (422 on ``confirm`` without it)."""
    auth.remove_membership(
        session, project_id=ctx.project.id, email=email, actor=ctx.actor, confirm_self=confirm
    )
    session.commit()
