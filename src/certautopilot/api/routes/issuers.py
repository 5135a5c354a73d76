from __future__ import annotations

from fastapi import APIRouter, status

from certautopilot.deps import DbSession, InProject, State
from certautopilot.issuers import service as issuers
from certautopilot.issuers.schemas import IssuerIn, IssuerOut, IssuerPatch

router = APIRouter(tags=["issuers"])


@router.post(
    "/projects/{project}/issuers", status_code=status.HTTP_201_CREATED, response_model=IssuerOut
)
def create_issuer(body: IssuerIn, ctx: InProject, session: DbSession, state: State) -> IssuerOut:
    session.commit()  # end the read transaction: the check talks to the CA
    check = issuers.check_new_issuer(body, actor=ctx.actor)
    issuer = issuers.create_issuer(
        session, state.kek, project_id=ctx.project.id, body=body, check=check, actor=ctx.actor
    )
    session.commit()
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
    where = {"project_id": ctx.project.id, "issuer_id": issuer_id}
    settings = issuers.edited_settings(session, state.kek, patch=body, actor=ctx.actor, **where)
    session.commit()  # no transaction stays open while the CA is called
    verified = issuers.check_edited_issuer(settings, issuer_id=issuer_id)
    issuer = issuers.update_issuer(
        session,
        state.kek,
        patch=body,
        settings=settings,
        verified=verified,
        actor=ctx.actor,
        **where,
    )
    session.commit()
    return issuers.to_out(issuer)
