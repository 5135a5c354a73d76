"""A certificate's versions: the list, and downloads of any version still valid."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse

from certautopilot.certificates import service as certs
from certautopilot.certificates import versions
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, InProject, State
from certautopilot.validation import MAX_INT32

router = APIRouter(tags=["certificates"])
BASE = "/projects/{project}/certificates/{cert_id}/versions"


@router.get(BASE)
def list_versions(cert_id: str, ctx: InProject, session: DbSession) -> list[dict[str, Any]]:
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    return versions.list_versions(session, cert)


@router.get(BASE + "/{seq}/{what}.pem", response_class=PlainTextResponse)
def download_version(
    cert_id: str,
    what: str,
    ctx: InProject,
    session: DbSession,
    state: State,
    seq: int = Path(ge=1, le=MAX_INT32, description="the version number (1, 2, ...)"),
) -> PlainTextResponse:
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    pem = versions.download_version(
        session, state.kek, cert=cert, seq=seq, what=what, actor=ctx.actor, now=utcnow()
    )
    session.commit()
    return PlainTextResponse(
        pem, media_type="application/x-pem-file", headers={"Cache-Control": "no-store"}
    )
