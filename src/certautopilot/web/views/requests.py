"""Requests: approval requests for approvers; approve or reject with a comment."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot import links
from certautopilot.approvals import service as approvals
from certautopilot.approvals.schemas import DecisionIn
from certautopilot.approvals.states import RequestStatus
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, State
from certautopilot.errors import Conflict, InvalidInput
from certautopilot.web.common import Form, InProjectWeb, WebRoute
from certautopilot.workflows import commands

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BASE = "/p/{project}/requests"


@router.get(BASE, response_class=HTMLResponse)
def list_requests(
    web: InProjectWeb, session: DbSession, status: str = "pending", created: str = ""
) -> Response:
    assert web.project is not None and web.actor is not None
    rows = approvals.list_requests(session, project_id=web.project.id, status=status or None)
    items = [approvals.to_out(r, web.actor) for r in rows]
    return web.render(
        "requests/list.html",
        items=items,
        status=status,
        statuses=(*RequestStatus, ""),
        created=created,
    )


REJECT_NEEDS_COMMENT = "Say why you reject it: the requester reads this comment."


def _with_error(
    web: InProjectWeb, session: DbSession, request_id: str, message: str, comment: str
) -> Response:
    """The request again, with ``message`` under its comment field and what was typed."""
    assert web.project is not None and web.actor is not None
    row = approvals.get_request(session, project_id=web.project.id, request_id=request_id)
    return web.render(
        "requests/list.html",
        status_code=422,
        items=[approvals.to_out(row, web.actor)],
        status="",
        statuses=(*RequestStatus, ""),
        created="",
        errors={request_id: message},
        typed={request_id: comment},
    )


@router.post(BASE + "/{request_id}/{decision}")
def decide(
    request_id: str,
    decision: str,
    web: InProjectWeb,
    form: Form,
    session: DbSession,
    state: State,
) -> Response:
    if decision not in ("approve", "reject"):
        return Response(status_code=404)
    body = DecisionIn(comment=str(form.get("comment") or "")[:4000])
    assert web.project is not None and web.actor is not None
    approve = decision == "approve"
    if not approve and not body.comment.strip():
        return _with_error(web, session, request_id, REJECT_NEEDS_COMMENT, body.comment)
    try:
        commands.decide_request(
            session,
            state.launcher,
            project_id=web.project.id,
            request_id=request_id,
            approve=approve,
            comment=body.comment,
            actor=web.actor,
            base_url=state.settings.public_url,
            now=utcnow(),
        )
    except (InvalidInput, Conflict) as exc:  # next to the form, the page kept
        session.rollback()
        return _with_error(web, session, request_id, str(exc), body.comment)
    return RedirectResponse(
        links.requests(web.project.slug, status="", decided=request_id), status_code=303
    )


@router.get(BASE + "/{request_id}", response_class=HTMLResponse)
def show_request(request_id: str, web: InProjectWeb, session: DbSession) -> Response:
    """One request (the link in an approval notification), with its approve/reject form."""
    assert web.project is not None and web.actor is not None
    row = approvals.get_request(session, project_id=web.project.id, request_id=request_id)
    return web.render(
        "requests/list.html",
        items=[approvals.to_out(row, web.actor)],
        status="",
        statuses=("pending", "approved", "rejected", "expired", ""),
        created="",
    )
