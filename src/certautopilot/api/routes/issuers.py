from __future__ import annotations

from fastapi import APIRouter, status

from certautopilot.deps import DbSession, InProject, State
from certautopilot.issuers import service as issuers
from certautopilot.issuers.schemas import IssuerIn, IssuerOut, IssuerPatch
from certautopilot.workflows import commands

router = APIRouter(tags=["issuers"])


@router.post(
    "/projects/{project}/issuers", status_code=status.HTTP_201_CREATED, response_model=IssuerOut
)
def create_issuer(body: IssuerIn, ctx: InProject, session: DbSession, state: State) -> IssuerOut:
    """Registers the ACME account (or checks the AD CS server) before storing the issuer."""
    issuer = commands.create_issuer(
        session, state.kek, project_id=ctx.project.id, body=body, actor=ctx.actor
    )
    return issuers.to_out(issuer)


@router.get("/projects/{project}/issuers", response_model=list[IssuerOut])
def list_issuers(ctx: InProject, session: DbSession) -> list[IssuerOut]:
    return [issuers.to_out(i) for i in issuers.list_issuers(session, project_id=ctx.project.id)]


@router.get("/projects/{project}/issuers/{issuer_id}", response_model=IssuerOut)
def get_issuer(issuer_id: str, ctx: InProject, session: DbSession) -> IssuerOut:
    return issuers.to_out(
        issuers.get_issuer(session, project_id=ctx.project.id, issuer_id=issuer_id)
    )


@router.patch("/projects/{project}/issuers/{issuer_id}", response_model=IssuerOut)
def update_issuer(
    issuer_id: str, body: IssuerPatch, ctx: InProject, session: DbSession, state: State
) -> IssuerOut:
    """Edits an AD CS issuer; the result is checked at the CA before it is stored."""
    issuer = commands.update_issuer(
        session,
        state.kek,
        project_id=ctx.project.id,
        issuer_id=issuer_id,
        patch=body,
        actor=ctx.actor,
    )
    return issuers.to_out(issuer)
