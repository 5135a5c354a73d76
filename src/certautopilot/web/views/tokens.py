"""Your own API tokens (any signed-in user): create one (shown once) with an expiry and an
optional project and role limit, list them with their scope, revoke."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot.auth import tokens
from certautopilot.auth.models import ROLES
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


#: The expiry choices of the form (days; "" is never), the first one the default.
EXPIRY_CHOICES = (
    ("90", "90 days"),
    ("30", "30 days"),
    ("7", "7 days"),
    ("365", "1 year"),
    ("", "never"),
)


def _page(
    web: Web,
    session: DbSession,
    *,
    token: str = "",
    token_name: str = "",
    typed: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    response = web.render(
        "tokens.html",
        status_code=status_code,
        tokens=[
            (row, slug, tokens.is_expired(row))
            for row, slug in tokens.list_tokens(session, user=web.user)
        ],
        new_token=token,
        new_token_name=token_name,
        typed=typed or {"expires": EXPIRY_CHOICES[0][0], "scope_project": "", "role": ""},
        expiry_choices=EXPIRY_CHOICES,
        roles=ROLES,
        errors=errors or {},
        revoked=web.request.query_params.get("revoked", ""),
    )
    response.headers["Cache-Control"] = "no-store"  # the page may hold a new token
    return response


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(web: SignedIn, session: DbSession, p: str = "") -> Response:
    return _page(_in_project(web, session, p), session)


#: the service's field name -> the form's, so an error shows next to its field
_FIELDS = {"expires_in_days": "expires", "project": "scope_project", "role": "role"}


@router.post("/tokens", response_class=HTMLResponse)
def create_token(web: SignedIn, form: Form, session: DbSession) -> Response:
    web = _in_project(web, session, text(form, "p"))
    typed = {k: text(form, k) for k in ("name", "expires", "scope_project", "role")}
    errors: Errors = {}
    if not typed["name"]:
        errors["name"] = ["give the token a name, such as the script or machine that uses it"]
    if typed["expires"] not in {value for value, _ in EXPIRY_CHOICES}:
        errors["expires"] = ["choose one of the offered expiry times"]
    if not errors:
        try:
            token = tokens.create_token(
                session,
                user=web.user,
                name=typed["name"],
                expires_in_days=int(typed["expires"]) if typed["expires"] else None,
                project=typed["scope_project"] or None,
                role=typed["role"] or None,
            )
            session.commit()
        except InvalidInput as exc:
            session.rollback()
            errors = from_invalid(exc, lambda n: _FIELDS.get(n, n or "name"))
        else:
            return _page(web, session, token=token, token_name=typed["name"])
    return _page(web, session, typed=typed, errors=errors, status_code=422)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: str, web: SignedIn, form: Form, session: DbSession) -> Response:
    row = tokens.revoke_token(session, user=web.user, token_id=token_id)
    session.commit()
    back = f"&p={quote(text(form, 'p'))}" if text(form, "p") else ""
    return RedirectResponse(
        f"/tokens?revoked={quote(row.name or row.prefix)}{back}", status_code=303
    )
