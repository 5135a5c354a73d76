from __future__ import annotations

from fastapi import APIRouter, Response, status

from certautopilot.deps import DbSession, InProject, State
from certautopilot.issuers import service as issuers
from certautopilot.issuers.schemas import (
    IssuerIn,
    IssuerOut,
    IssuerPatch,
    IssuerProfilesOut,
    IssuerTestOut,
    ProfileOut,
)
from certautopilot.renewal import profiles
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
    return issuers.to_out(issuer, default_limits=state.settings.rate_limits)


@router.get("/projects/{project}/issuers", response_model=list[IssuerOut])
def list_issuers(ctx: InProject, session: DbSession, state: State) -> list[IssuerOut]:
    return [
        issuers.to_out(i, default_limits=state.settings.rate_limits)
        for i in issuers.list_issuers(session, project_id=ctx.project.id)
    ]


@router.get("/projects/{project}/issuers/{issuer_id}", response_model=IssuerOut)
def get_issuer(issuer_id: str, ctx: InProject, session: DbSession, state: State) -> IssuerOut:
    return issuers.to_out(
        issuers.get_issuer(session, project_id=ctx.project.id, issuer_id=issuer_id),
        default_limits=state.settings.rate_limits,
    )


@router.get("/projects/{project}/issuers/{issuer_id}/profiles", response_model=IssuerProfilesOut)
def issuer_profiles(issuer_id: str, ctx: InProject, session: DbSession) -> IssuerProfilesOut:
    """Reads the CA's directory (a 502 problem when it cannot be read)."""
    issuer = issuers.get_issuer(session, project_id=ctx.project.id, issuer_id=issuer_id)
    session.expunge(issuer)
    session.commit()  # the directory is network I/O
    offered = profiles.offered(issuer)
    return IssuerProfilesOut(
        issuer=issuer.id,
        profiles=[ProfileOut(name=n, description=d) for n, d in sorted(offered.items())],
    )


@router.patch("/projects/{project}/issuers/{issuer_id}", response_model=IssuerOut)
def update_issuer(
    issuer_id: str, body: IssuerPatch, ctx: InProject, session: DbSession, state: State
) -> IssuerOut:
    """Edits an AD CS issuer (checked at the CA before it is stored) or an ACME issuer's
    rate limits and CAA identity."""
    issuer = commands.update_issuer(
        session,
        state.kek,
        project_id=ctx.project.id,
        issuer_id=issuer_id,
        patch=body,
        actor=ctx.actor,
    )
    return issuers.to_out(issuer, default_limits=state.settings.rate_limits)


@router.delete("/projects/{project}/issuers/{issuer_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_issuer(issuer_id: str, ctx: InProject, session: DbSession) -> Response:
    """Deletes an issuer no certificate uses (409 naming them otherwise: disable it instead,
    ``PATCH {"enabled": false}``), with its secrets. The ACME account stays at the CA."""
    commands.delete_issuer(session, project_id=ctx.project.id, issuer_id=issuer_id, actor=ctx.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/projects/{project}/issuers/{issuer_id}/test", response_model=IssuerTestOut)
def test_issuer(issuer_id: str, ctx: InProject, session: DbSession, state: State) -> IssuerTestOut:
    """Reaches the CA with the stored settings, step by step (ACME: the directory, then the
    account with a signed request; AD CS: sign-in, templates, CA chain). Orders nothing."""
    return commands.test_issuer(
        session, state.kek, project_id=ctx.project.id, issuer_id=issuer_id, actor=ctx.actor
    )
