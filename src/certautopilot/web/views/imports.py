"""The import page: PEM, DER, PKCS#12 files or a tarball, chosen or dropped on the page;
the results as imported / merged, with what adoption needs (certificates.imports)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from certautopilot.auth import service as auth
from certautopilot.certificates import imports
from certautopilot.certificates.bundles import MAX_FILE_BYTES, MAX_FILES, Upload
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, State
from certautopilot.errors import InvalidInput
from certautopilot.web.common import CsrfError, InProjectWeb, Web, WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PATH = "/p/{project}/import"
MAX_TARBALL_BYTES = 8 * 1024 * 1024


async def _uploads(request: Request, web: InProjectWeb) -> tuple[list[Upload], str | None]:
    """The CSRF-checked multipart form's files (bounded) and the password typed."""
    form = await request.form(max_files=MAX_FILES, max_fields=20)
    sent = request.headers.get("x-csrf-token") or str(form.get("csrf") or "")
    if not sent or not hmac.compare_digest(sent, web.csrf):
        raise CsrfError("the form's security token is missing or out of date")
    password = str(form.get("password") or "") or None
    uploads = []
    for i, item in enumerate(form.getlist("files")):
        if not isinstance(item, UploadFile) or not item.filename:
            continue
        data = await item.read(MAX_TARBALL_BYTES + 1)
        if len(data) > MAX_TARBALL_BYTES:
            raise InvalidInput.field(
                f"files[{i}]", f"{item.filename}: over {MAX_TARBALL_BYTES} bytes"
            )
        uploads.append(Upload(name=item.filename, data=data, password=password))
    return uploads, password


Uploaded = Annotated[tuple[list[Upload], str | None], Depends(_uploads)]


def _page(web: Web, *, result: Any = None, error: str = "", status_code: int = 200) -> Response:
    return web.render(
        "certificates/import.html",
        status_code=status_code,
        result=result,
        error=error,
        max_file_bytes=MAX_FILE_BYTES,
    )


@router.get(PATH, response_class=HTMLResponse)
def import_form(web: InProjectWeb) -> Response:
    auth.require(web.ctx.actor, "operator", "Importing certificates")
    return _page(web)


@router.post(PATH, response_class=HTMLResponse)
def import_post(
    web: InProjectWeb, uploaded: Uploaded, session: DbSession, state: State
) -> Response:
    uploads, _ = uploaded
    if not uploads:
        return _page(web, error="Choose or drop at least one file.", status_code=422)
    try:
        result = imports.import_files(
            session,
            state.kek,
            project_id=web.ctx.project.id,
            uploads=uploads,
            actor=web.ctx.actor,
            now=utcnow(),
        )
    except InvalidInput as exc:
        session.rollback()
        return _page(web, error=str(exc), status_code=422)
    session.commit()
    return _page(web, result=result)
