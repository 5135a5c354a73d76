from __future__ import annotations

from fastapi import APIRouter, status

from certautopilot.api.deps import DbSession, InProject, State
from certautopilot.auth import service as auth
from certautopilot.issuers import service as issuers
from certautopilot.issuers.schemas import IssuerIn, IssuerOut

router = APIRouter(tags=["issuers"])


@router.post(
    "/projects/{project}/issuers", status_code=status.HTTP_201_CREATED, response_model=IssuerOut
)
def create_issuer(body: IssuerIn, ctx: InProject, session: DbSession, state: State) -> IssuerOut:
    auth.require(ctx.actor, "admin", "Adding an issuer")
    session.commit()  # end the read transaction: registration talks to the CA
    account = issuers.register_acme_account(body)
    issuer = issuers.create_acme_issuer(
        session, state.kek, project_id=ctx.project.id, body=body, account=account, actor=ctx.actor
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
