"""Project policy and approval requests."""

from __future__ import annotations

from fastapi import APIRouter, Query

from certautopilot.approvals import service as approvals
from certautopilot.approvals.schemas import DecisionIn, RequestList, RequestOut
from certautopilot.auth import service as auth
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, InProject, State
from certautopilot.notifications import service as notifications
from certautopilot.notifications.schemas import ChannelIn, ChannelOut
from certautopilot.policy import service as policy
from certautopilot.policy.schemas import PolicyOut, PolicyRules
from certautopilot.workflows import commands

router = APIRouter(tags=["governance"])


def _policy_out(session: DbSession, project_id: str) -> PolicyOut:
    row = policy.get_policy(session, project_id)
    return PolicyOut(
        rules=PolicyRules.model_validate(row.rules) if row else PolicyRules(),
        updated_by=row.updated_by if row else None,
        updated_at=row.updated_at if row else None,
    )


@router.get("/projects/{project}/policy", response_model=PolicyOut)
def get_policy(ctx: InProject, session: DbSession) -> PolicyOut:
    auth.require(ctx.actor, "admin", "Reading the project policy")
    return _policy_out(session, ctx.project.id)


@router.put("/projects/{project}/policy", response_model=PolicyOut)
def put_policy(body: PolicyRules, ctx: InProject, session: DbSession) -> PolicyOut:
    policy.put_policy(session, project_id=ctx.project.id, rules=body, actor=ctx.actor)
    session.commit()
    return _policy_out(session, ctx.project.id)


@router.get("/projects/{project}/requests", response_model=RequestList)
def list_requests(
    ctx: InProject,
    session: DbSession,
    status: str | None = Query(default=None, max_length=16),
) -> RequestList:
    rows = approvals.list_requests(session, project_id=ctx.project.id, status=status)
    return RequestList(items=[approvals.to_out(r, ctx.actor) for r in rows])


@router.get("/projects/{project}/requests/{request_id}", response_model=RequestOut)
def get_request(request_id: str, ctx: InProject, session: DbSession) -> RequestOut:
    row = approvals.get_request(session, project_id=ctx.project.id, request_id=request_id)
    return approvals.to_out(row, ctx.actor)


def _decide(
    request_id: str,
    body: DecisionIn,
    ctx: InProject,
    session: DbSession,
    state: State,
    approve: bool,
) -> RequestOut:
    row = commands.decide_request(
        session,
        state.launcher,
        project_id=ctx.project.id,
        request_id=request_id,
        approve=approve,
        comment=body.comment,
        actor=ctx.actor,
        base_url=state.settings.public_url,
        now=utcnow(),
    )
    return approvals.to_out(row, ctx.actor)


@router.post("/projects/{project}/requests/{request_id}/approve", response_model=RequestOut)
def approve(
    request_id: str, body: DecisionIn, ctx: InProject, session: DbSession, state: State
) -> RequestOut:
    return _decide(request_id, body, ctx, session, state, approve=True)


@router.post("/projects/{project}/requests/{request_id}/reject", response_model=RequestOut)
def reject(
    request_id: str, body: DecisionIn, ctx: InProject, session: DbSession, state: State
) -> RequestOut:
    return _decide(request_id, body, ctx, session, state, approve=False)


@router.post(
    "/projects/{project}/notification-channels", status_code=201, response_model=ChannelOut
)
def create_channel(body: ChannelIn, ctx: InProject, session: DbSession, state: State) -> ChannelOut:
    channel = notifications.create_channel(
        session, state.kek, project_id=ctx.project.id, body=body, actor=ctx.actor
    )
    session.commit()
    return notifications.to_out(channel)


@router.get("/projects/{project}/notification-channels", response_model=list[ChannelOut])
def list_channels(ctx: InProject, session: DbSession) -> list[ChannelOut]:
    auth.require(ctx.actor, "admin", "Reading notification channels")
    return [
        notifications.to_out(c)
        for c in notifications.list_channels(session, project_id=ctx.project.id)
    ]
