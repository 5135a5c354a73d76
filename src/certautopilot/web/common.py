"""What every web view shares: templates, the signed-in user, the project, CSRF, errors."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from certautopilot import links
from certautopilot.auth import sessions as web_sessions
from certautopilot.auth.models import User
from certautopilot.auth.service import Actor
from certautopilot.deps import Clock, DbSession, ProjectContext, get_state
from certautopilot.errors import CertAutoPilotError, InvalidInput, Unauthenticated
from certautopilot.projects import service as projects
from certautopilot.projects.models import Project
from certautopilot.web import session as websession

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

STATUS_TONE = {
    "issued": "ok",
    "requested": "busy",
    "issuing": "busy",
    "retrying": "busy",
    "awaiting_dns": "wait",
    "awaiting_ca": "wait",
    "awaiting_approval": "wait",
    "pending": "wait",
    "approved": "ok",
    "succeeded": "ok",
    "running": "busy",
    "failed": "bad",
    "rejected": "bad",
    "revoked": "bad",
    "expired": "bad",
    "denied": "bad",
}
templates.env.globals["status_tone"] = lambda s: STATUS_TONE.get(s, "muted")
templates.env.globals["links"] = links  # every page URL comes from certautopilot.links
templates.env.filters["human"] = lambda s: str(s).replace("_", " ")

#: Signs of a library's own error text (a Python exception's message), not words for people.
RAW_ERROR = re.compile(
    r"ConnectionPool|Max retries|Errno|Traceback|object at 0x|\w+Error\(|urllib3|ssl\.c:|<[a-z_.]+ "
)


def split_error(text: object) -> tuple[str, str]:
    """(what to say, the raw text for a "Details" disclosure, or ""). Raw exception text
    (an ``HTTPSConnectionPool(...)`` message) is shown only behind "Details"."""
    raw = str(text or "")
    found = RAW_ERROR.search(raw)
    if not found:
        return raw, ""
    before = raw[: found.start()].rsplit("(", 1)[0]
    if before and not before[-1].isspace():  # the match began inside a word: drop the word
        before = re.sub(r"\S*$", "", before)
    before = before.strip(" :;,(")
    said = before if len(before) >= 10 else "The connection or the remote service failed"
    return said.rstrip(".") + ".", raw


templates.env.globals["split_error"] = split_error


class CsrfError(CertAutoPilotError):
    status = 403
    title = "Form expired"


class WebRoute(APIRoute):
    """Errors become HTML: sign-in redirects for anonymous users, an error page otherwise."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": "/login"})
                return RedirectResponse("/login?next=" + quote(target), status_code=303)
            except CertAutoPilotError as exc:
                if exc.status >= 500:
                    log.warning("%s: %s", type(exc).__name__, exc)
                return error_page(request, exc)
            except Exception:
                log.exception("unhandled error in the web UI")
                return error_page(
                    request, CertAutoPilotError("Something went wrong on our side; it was logged.")
                )

        return route


def error_page(request: Request, exc: CertAutoPilotError) -> HTMLResponse:
    """The error in words (raw exception text behind "Details"), inside the page's own
    navigation when the user is signed in (the project's, on a project page)."""
    hint = {
        403: "Your role in this project does not allow this. Ask a project admin.",
        404: "It may have been removed, or you are not a member of its project.",
    }.get(exc.status, "")
    if isinstance(exc, CsrfError):
        hint = "Reload the page and try again."
    context = {"title": exc.title, "detail": describe(exc), "hint": hint, "status": exc.status}
    web = getattr(request.state, "web", None)
    if web is not None:
        try:
            return templates.TemplateResponse(
                request, "error.html", {**context, "web": web}, status_code=exc.status
            )
        except Exception:  # the navigation's rows went with a rolled-back session
            log.warning("error page without navigation", exc_info=True)
    return templates.TemplateResponse(
        request, "error.html", {**context, "web": None}, status_code=exc.status
    )


def describe(exc: CertAutoPilotError) -> str:
    """An error in the UI's words: a refused field is named as people read it ("password:
    ..." says "Password: ..."), not as the API spells it."""
    if isinstance(exc, InvalidInput) and exc.errors:
        return "; ".join(
            f"{field_label(f)}: {m}" if f not in ("", "body") else m for f, m in exc.errors
        )
    return str(exc)


def field_label(field: str) -> str:
    """``common_name`` -> "Common name", ``files[0].key`` -> "Files 1 key"."""
    words = re.sub(r"\[(\d+)\]", lambda m: f" {int(m.group(1)) + 1}", field)
    words = words.replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:]


@dataclass
class Web:
    """The signed-in user, their projects and (on project pages) the project and role."""

    request: Request
    user: User
    csrf: str
    projects: list[Project]
    session_id: str = ""
    project: Project | None = None
    actor: Actor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def can(self, role: str) -> bool:
        return self.actor is not None and self.actor.at_least(role)

    @property
    def ctx(self) -> ProjectContext:
        assert self.project is not None and self.actor is not None
        return ProjectContext(self.project, self.actor)

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            self.request, name, {"web": self, **context}, status_code=status_code
        )


def session_key(request: Request) -> bytes:
    return websession.secret_key(get_state(request).settings)


def get_web(request: Request, session: DbSession, clock: Clock) -> Web:
    """The signed-in user of the request's session cookie. Resolving the session may move
    its last-seen time (at most once a minute) or delete it when it ran out: committed here,
    before the view, which then starts a transaction of its own."""
    token = websession.read_token(request)
    if token is None:
        raise Unauthenticated("sign in first")
    idle = timedelta(minutes=get_state(request).settings.session_idle_minutes)
    row = web_sessions.resolve(session, token, now=clock(), idle=idle)
    session.commit()
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None:
        raise Unauthenticated("sign in again")
    csrf = websession.csrf_for(session_key(request), token)
    web = Web(request, user, csrf, projects.projects_of(session, user=user), session_id=row.id)
    request.state.web = web  # an error page keeps this user's navigation
    return web


SignedIn = Annotated[Web, Depends(get_web)]


def get_project_web(project: str, session: DbSession, web: SignedIn) -> Web:
    row, role = projects.project_for_member(session, slug=project, user=web.user)
    web.project = row
    web.actor = Actor(user_id=web.user.id, email=web.user.email, role=role)
    return web


InProjectWeb = Annotated[Web, Depends(get_project_web)]


async def check_csrf(request: Request, web: Web) -> dict[str, Any]:
    """The posted form, after checking its CSRF token (form field or X-CSRF-Token header)."""
    form = await request.form()
    sent = request.headers.get("x-csrf-token") or str(form.get("csrf") or "")
    if not sent or not hmac.compare_digest(sent, web.csrf):
        raise CsrfError("the form's security token is missing or out of date")
    out: dict[str, Any] = {}
    for key in form:
        values = [str(v) for v in form.getlist(key)]
        out[key] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return out


async def posted_form(request: Request, web: SignedIn) -> dict[str, Any]:
    """The CSRF-checked form as a dependency: reading the body is async, so the view
    itself can be a plain ``def`` that FastAPI runs in its threadpool, off the event loop
    (views that write to the database or call a CA must not run on it)."""
    return await check_csrf(request, web)


Form = Annotated[dict[str, Any], Depends(posted_form)]


async def raw_form(request: Request) -> dict[str, str]:
    """The posted form without the CSRF check (the sign-in form checks its own token)."""
    form = await request.form()
    return {key: str(value) for key, value in form.items()}


RawForm = Annotated[dict[str, str], Depends(raw_form)]
