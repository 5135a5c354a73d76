"""``POST /projects/{project}/imports``: certificates issued elsewhere (certificates.imports)."""

from __future__ import annotations

from fastapi import APIRouter

from certautopilot.certificates import imports
from certautopilot.certificates.schemas import ImportIn, ImportOut
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, InProject, State

router = APIRouter(tags=["certificates"])


@router.post("/projects/{project}/imports", response_model=ImportOut)
def import_certificates(
    body: ImportIn, ctx: InProject, session: DbSession, state: State
) -> ImportOut:
    """PEM (certificate, chain, key), DER, PKCS#12 with its password, or a tarball of them;
    a certificate the project holds already (same leaf SHA-256) is merged. Imported
    certificates are unmanaged (``managed: false``): watched, never renewed until adopted."""
    result = imports.import_body(
        session, state.kek, project_id=ctx.project.id, body=body, actor=ctx.actor, now=utcnow()
    )
    session.commit()
    return ImportOut(imported=result.imported, merged=result.merged, refused=result.refused)
