"""Your own API tokens (any signed-in user): create one (shown once), list, revoke."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot.auth import service as auth
from certautopilot.auth.service import Actor
from certautopilot.deps import DbSession
from certautopilot.errors import InvalidInput, NotFound
from certautopilot.projects import service as projects
from certautopilot.web.common import Form, SignedIn, Web, WebRoute
from certautopilot.web.views.forms import Errors, from_invalid, text

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _in_project(web: Web, session: DbSession, slug: str) -> Web:
    """The page keeps the navigation of the project it was opened from (``?p=<slug>``, a
    project the user is a member of; any other slug is ignored)."""
    if slug:
        try:
            row, role = projects.project_for_member(session, slug=slug[:100], user=web.user)
        except NotFound:
            return web
        web.project = row
        web.actor = Actor(user_id=web.user.id, email=web.user.email, role=role)
    return web


def _page(
    web: Web,
    session: DbSession,
    *,
    token: str = "",
    token_name: str = "",
    name: str = "",
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    response = web.render(
        "tokens.html",
        status_code=status_code,
        tokens=auth.list_tokens(session, user=web.user),
        new_token=token,
        new_token_name=token_name,
        typed_name=name,
        errors=errors or {},
        revoked=web.request.query_params.get("revoked", ""),
    )
    response.headers["Cache-Control"] = "no-store"  # the page may hold a new token
    return response


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(web: SignedIn, session: DbSession, p: str = "") -> Response:
    return _page(_in_project(web, session, p), session)


@router.post("/tokens", response_class=HTMLResponse)
def create_token(web: SignedIn, form: Form, session: DbSession) -> Response:
    web = _in_project(web, session, text(form, "p"))
    name = text(form, "name")
    errors: Errors = {}
    if not name:
        errors["name"] = ["give the token a name, such as the script or machine that uses it"]
    else:
        try:
            token = auth.create_token(session, user=web.user, name=name)
            session.commit()
        except InvalidInput as exc:
            session.rollback()
            errors = from_invalid(exc, lambda n: n or "name")
        else:
            return _page(web, session, token=token, token_name=name)
    return _page(web, session, name=name, errors=errors, status_code=422)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: str, web: SignedIn, form: Form, session: DbSession) -> Response:
    row = auth.revoke_token(session, user=web.user, token_id=token_id)
    session.commit()
    back = f"&p={quote(text(form, 'p'))}" if text(form, "p") else ""
    return RedirectResponse(
        f"/tokens?revoked={quote(row.name or row.prefix)}{back}", status_code=303
    )
