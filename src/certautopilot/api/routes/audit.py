"""A project's audit trail for a SIEM (JSON lines) and its hash chain's verdict (admins)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from certautopilot.audit import chain
from certautopilot.audit import service as audit
from certautopilot.auth import service as auth
from certautopilot.deps import DbSession, InProject, State

router = APIRouter(tags=["audit"])
NDJSON = "application/x-ndjson"


@router.get(
    "/projects/{project}/audit",
    responses={200: {"content": {NDJSON: {}}, "description": "events in chain order"}},
)
def export_audit(
    ctx: InProject,
    session: DbSession,
    after: Annotated[int, Query(ge=0, lt=2**63, description="events after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    format: Annotated[Literal["json", "jsonl"] | None, Query()] = None,
    accept: Annotated[str, Header()] = "",
) -> Any:
    """The project's events after ``after`` in chain order, each with seq, prev_hash and
    hash. JSON lines with ``format=jsonl`` or ``Accept: application/x-ndjson`` (a SIEM
    polls with ``after`` = the last seq it has); a JSON array otherwise."""
    auth.require(ctx.actor, "admin", "Exporting the audit trail")
    rows = [
        audit.as_record(e)
        for e in audit.project_events(session, project_id=ctx.project.id, after=after, limit=limit)
    ]
    if format == "jsonl" or (format is None and NDJSON in accept):

        def lines() -> Iterator[bytes]:
            for row in rows:
                yield json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n"

        return StreamingResponse(lines(), media_type=NDJSON)
    return rows


@router.get("/projects/{project}/audit/verify")
def verify_audit(ctx: InProject, session: DbSession, state: State) -> dict[str, Any]:
    """The project's hash chain checked (every event, link and signed checkpoint): ``ok``,
    or the first bad seq and what is wrong (altered, removed, reordered, truncated)."""
    auth.require(ctx.actor, "admin", "Verifying the audit trail")
    (result,) = chain.verify(session, state.kek, ctx.project.id)
    finding = result.finding
    return {
        "ok": finding is None,
        "events": result.events,
        "checkpoints": result.checkpoints,
        "seq": finding.seq if finding else None,
        "problem": str(finding.problem) if finding else None,
        "detail": finding.why if finding else None,
    }
