"""Sign-in, sign-out and the landing page."""

from __future__ import annotations

import hmac
import math
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot import links
from certautopilot.auth import invitations, signin
from certautopilot.auth import service as auth
from certautopilot.auth import sessions as web_sessions
from certautopilot.deps import Clock, DbSession, get_state
from certautopilot.errors import InvalidInput, RateLimited, Unauthenticated
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
    request: Request,
    *,
    next_url: str,
    email: str = "",
    error: str = "",
    status_code: int = 200,
    retry_after: float | None = None,
) -> Response:
    key = session_key(request)
    form = websession.read_signin(request, key) or websession.new_signin_form()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"web": None, "csrf": form.csrf, "next": next_url, "email": email, "error": error},
        status_code=status_code,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(math.ceil(retry_after))
    websession.write_signin(request, response, key, form)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login")
def login(request: Request, form: RawForm, session: DbSession, clock: Clock) -> Response:
    """A plain ``def``: the password hash check is CPU work, kept off the event loop."""
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    next_url = _safe_next(str(form.get("next") or "/"))
    key = session_key(request)
    signin_form = websession.read_signin(request, key)
    sent = str(form.get("csrf") or "")
    if signin_form is None or not sent or not hmac.compare_digest(sent, signin_form.csrf):
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error="The sign-in form expired. Please try again.",
            status_code=403,
        )
    settings = get_state(request).settings
    address = request.client.host if request.client else ""
    now = clock()
    try:
        # Counted (and committed) before the password is checked: see auth.signin.
        attempt = signin.begin(
            session, email=email, address=address, now=now, policy=signin.policy_of(settings)
        )
        session.commit()
    except RateLimited as exc:
        session.rollback()
        return _too_many(request, next_url, email, exc.retry_after or 1.0)
    try:
        user = auth.check_password(session, email=email, password=password)
    except Unauthenticated:
        wait = attempt.retry_after(now)
        if wait is not None:  # this failure reached the limit
            return _too_many(request, next_url, email, wait, "Wrong email or password. ")
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error="Wrong email or password.",
            status_code=401,
        )
    signin.succeeded(session, attempt)
    token = web_sessions.start(
        session,
        user=user,
        now=now,
        idle=timedelta(minutes=settings.session_idle_minutes),
        client=address,
        user_agent=request.headers.get("user-agent", ""),
    )
    session.commit()
    response = RedirectResponse(next_url, status_code=303)
    websession.write_token(request, response, token)
    return response


def _too_many(
    request: Request, next_url: str, email: str, wait: float, prefix: str = ""
) -> Response:
    """429 with Retry-After, and the page says how long to wait."""
    return _login_page(
        request,
        next_url=next_url,
        email=email,
        error=f"{prefix}Too many attempts; try again in {math.ceil(wait)} seconds.",
        status_code=429,
        retry_after=wait,
    )


@router.post("/logout")
def logout(request: Request, web: SignedIn, _: Form, session: DbSession) -> Response:
    """Ends the session in the database: a copy of the cookie stops working too."""
    token = websession.read_token(request)
    if token is not None:
        web_sessions.end(session, token, actor=web.user.email)
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    websession.clear(request, response)
    return response


@router.get("/", response_class=HTMLResponse)
def home(web: SignedIn) -> Response:
    if len(web.projects) >= 1:
        return RedirectResponse(links.project(web.projects[0].slug), status_code=303)
    return web.render("home.html")


# -- one-time sign-in links (auth.invitations) ---------------------------------------------
def _invite_page(
    request: Request,
    token: str,
    *,
    email: str,
    error: str = "",
    status_code: int = 200,
) -> Response:
    key = session_key(request)
    form = websession.read_signin(request, key) or websession.new_signin_form()
    response = templates.TemplateResponse(
        request,
        "invite.html",
        {
            "web": None,
            "csrf": form.csrf,
            "email": email,
            "error": error,
            "action": links.invitation(token),
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the link is a secret
    websession.write_signin(request, response, key, form)
    return response


@router.get("/invite/{token}", response_class=HTMLResponse)
def invite_form(token: str, request: Request, session: DbSession, clock: Clock) -> Response:
    found = invitations.open_invitation(session, token[:200], now=clock())
    if found is None:
        return _invite_page(request, token, email="", status_code=404)
    return _invite_page(request, token, email=found[1].email)


@router.post("/invite/{token}")
def invite_accept(
    token: str, request: Request, form: RawForm, session: DbSession, clock: Clock
) -> Response:
    """Sets the password, uses the link up and signs the user in. A plain ``def``: the
    password hash is CPU work, kept off the event loop."""
    now = clock()
    found = invitations.open_invitation(session, token[:200], now=now)
    if found is None:
        return _invite_page(request, token, email="", status_code=404)
    email = found[1].email
    signin_form = websession.read_signin(request, session_key(request))
    sent = str(form.get("csrf") or "")
    if signin_form is None or not sent or not hmac.compare_digest(sent, signin_form.csrf):
        error = "The form expired. Please type the password again."
        return _invite_page(request, token, email=email, error=error, status_code=403)
    password = str(form.get("password") or "")
    if password != str(form.get("password2") or ""):
        error = "The two passwords differ. Type the same password twice."
        return _invite_page(request, token, email=email, error=error, status_code=422)
    try:
        user = invitations.accept(session, token[:200], password=password, now=now)
    except InvalidInput:
        session.rollback()
        error = "Choose a password of at least 8 characters."
        return _invite_page(request, token, email=email, error=error, status_code=422)
    if user is None:  # used up by a request racing this one
        session.rollback()
        return _invite_page(request, token, email="", status_code=404)
    settings = get_state(request).settings
    web_token = web_sessions.start(
        session,
        user=user,
        now=now,
        idle=timedelta(minutes=settings.session_idle_minutes),
        client=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )
    session.commit()
    response = RedirectResponse("/", status_code=303)
    websession.write_token(request, response, web_token)
    return response
