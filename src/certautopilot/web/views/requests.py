"""Requests: approval requests for approvers; approve or reject with a comment."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot.api.routes import governance as api
from certautopilot.approvals import service as approvals
from certautopilot.approvals.schemas import DecisionIn
from certautopilot.approvals.states import RequestStatus
from certautopilot.web.common import DbSession, InProjectWeb, State, WebRoute, check_csrf

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


@router.post(BASE + "/{request_id}/{decision}")
async def decide(
    request_id: str,
    decision: str,
    request: Request,
    web: InProjectWeb,
    session: DbSession,
    state: State,
) -> Response:
    form = await check_csrf(request, web)
    body = DecisionIn(comment=str(form.get("comment") or "")[:4000])
    if decision == "approve":
        api.approve(request_id, body, web.ctx, session, state)
    elif decision == "reject":
        api.reject(request_id, body, web.ctx, session, state)
    else:
        return Response(status_code=404)
    assert web.project is not None
    return RedirectResponse(
        f"/p/{web.project.slug}/requests?status=&decided={request_id}", status_code=303
    )
