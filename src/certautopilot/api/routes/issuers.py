from __future__ import annotations

from fastapi import APIRouter, status

from certautopilot.api.deps import DbSession, InProject, State
from certautopilot.auth import service as auth
from certautopilot.errors import Conflict
from certautopilot.issuers import service as issuers
from certautopilot.issuers.adcs import service as adcs
from certautopilot.issuers.schemas import IssuerIn, IssuerOut, IssuerPatch

router = APIRouter(tags=["issuers"])


@router.post(
    "/projects/{project}/issuers", status_code=status.HTTP_201_CREATED, response_model=IssuerOut
)
def create_issuer(body: IssuerIn, ctx: InProject, session: DbSession, state: State) -> IssuerOut:
    auth.require(ctx.actor, "admin", "Adding an issuer")
    session.commit()  # end the read transaction: registration talks to the CA
    if body.adcs is not None:
        verified = adcs.verify(body.adcs)  # TLS, credentials, templates: at the CA
        issuer = adcs.create_issuer(
            session,
            state.kek,
            project_id=ctx.project.id,
            name=body.name,
            body=body.adcs,
            verified=verified,
            actor=ctx.actor,
        )
        session.commit()
        return issuers.to_out(issuer)
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


@router.patch("/projects/{project}/issuers/{issuer_id}", response_model=IssuerOut)
def update_issuer(
    issuer_id: str, body: IssuerPatch, ctx: InProject, session: DbSession, state: State
) -> IssuerOut:
    """Edits an AD CS issuer; the result is checked at the CA before it is stored."""
    auth.require(ctx.actor, "admin", "Editing an issuer")
    issuer = issuers.get_issuer(session, project_id=ctx.project.id, issuer_id=issuer_id)
    if issuer.kind != "adcs":
        raise Conflict("only AD CS issuers can be edited; add a new ACME issuer instead")
    settings = adcs.merged(session, state.kek, issuer, body.adcs)
    session.commit()  # no transaction stays open while the CA is called
    verified = adcs.verify(settings, issuer_id=issuer.id)
    issuer = issuers.get_issuer(session, project_id=ctx.project.id, issuer_id=issuer_id)
    adcs.update_issuer(
        session,
        state.kek,
        issuer=issuer,
        body=settings,
        verified=verified,
        changed=list(body.adcs.model_dump(exclude_unset=True)),
        actor=ctx.actor,
    )
    session.commit()
    return issuers.to_out(issuer)
