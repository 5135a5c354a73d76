"""Sign-in, sign-out and the landing page."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot import links
from certautopilot.auth import service as auth
from certautopilot.deps import DbSession
from certautopilot.errors import Unauthenticated
from certautopilot.web import session as websession
from certautopilot.web.common import (
    Form,
    RawForm,
    SignedIn,
    WebRoute,
    session_key,
    templates,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


def _login_page(
    request: Request, *, next_url: str, email: str = "", error: str = "", status_code: int = 200
) -> Response:
    key = session_key(request)
    ws = websession.read(request, key)
    if ws is None or ws.user_id is not None:
        ws = websession.new_session()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"web": None, "csrf": ws.csrf, "next": next_url, "email": email, "error": error},
        status_code=status_code,
    )
    websession.write(request, response, key, ws)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login")
def login(request: Request, form: RawForm, session: DbSession) -> Response:
    """A plain ``def``: the password hash check is CPU work, kept off the event loop."""
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    next_url = _safe_next(str(form.get("next") or "/"))
    key = session_key(request)
    ws = websession.read(request, key)
    sent = str(form.get("csrf") or "")
    if ws is None or not sent or not hmac.compare_digest(sent, ws.csrf):
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error="The sign-in form expired. Please try again.",
            status_code=403,
        )
    try:
        user = auth.check_password(session, email=email, password=password)
    except Unauthenticated:
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error="Wrong email or password.",
            status_code=401,
        )
    response = RedirectResponse(next_url, status_code=303)
    fresh = websession.new_session(user.id, websession.password_fingerprint(user.password_hash))
    websession.write(request, response, key, fresh)
    return response


@router.post("/logout")
def logout(request: Request, web: SignedIn, _: Form) -> Response:
    response = RedirectResponse("/login", status_code=303)
    websession.clear(request, response)
    return response


@router.get("/", response_class=HTMLResponse)
def home(web: SignedIn) -> Response:
    if len(web.projects) >= 1:
        return RedirectResponse(links.project(web.projects[0].slug), status_code=303)
    return web.render("home.html")
