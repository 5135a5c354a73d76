"""Audit events: one append-only row per state change, typed with a dotted name."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import chain
from certautopilot.audit.events import EventType
from certautopilot.audit.models import AuditEvent
from certautopilot.clock import as_utc, utcnow
from certautopilot.errors import InvalidInput

SYSTEM_ACTOR = "system"


def record(
    session: Session,
    *,
    type: EventType,
    actor: str,
    project_id: str | None,
    subject_type: str,
    subject_id: str,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """``at`` is when it happened, when that was before this call (default: now)."""
    event = AuditEvent(
        at=at or utcnow(),
        type=type,
        actor=actor,
        project_id=project_id,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail or {},
    )
    chain.append(session, event)  # seq, prev_hash, hash under the chain's lock at commit
    return event


def project_events(
    session: Session, *, project_id: str, after: int = 0, limit: int = 1000
) -> list[AuditEvent]:
    """A project's events after seq ``after`` in chain order (the SIEM export)."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.project_id == project_id, AuditEvent.seq > after)
        .order_by(AuditEvent.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def as_record(event: AuditEvent) -> dict[str, Any]:
    """One event as the JSON-lines export and the syslog forwarder give it."""
    return {
        "seq": event.seq,
        "at": as_utc(event.at).isoformat(timespec="microseconds"),
        "project_id": event.project_id,
        "actor": event.actor,
        "type": str(event.type),
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def events_for(session: Session, *, subject_type: str, subject_id: str) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == subject_id)
        .order_by(AuditEvent.id)
    )
    return list(session.scalars(stmt))


def _encode_cursor(newest_first: bool, last_id: int) -> str:
    raw = json.dumps({"o": "newest" if newest_first else "oldest", "i": last_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, newest_first: bool) -> int:
    order = "newest" if newest_first else "oldest"
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        given, last_id = raw["o"], raw["i"]
        if (
            not isinstance(last_id, int)
            or isinstance(last_id, bool)
            or not 0 <= last_id < 2**63  # a BIGINT id: anything else is not ours
            or given not in ("newest", "oldest")
        ):
            raise TypeError("cursor")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInput.field("cursor", "is not a cursor this service handed out") from exc
    if given != order:
        raise InvalidInput.field(
            "cursor", f"was handed out for order={given}; ask for page one again with order={order}"
        )
    return last_id


def events_page(
    session: Session,
    *,
    subject_type: str,
    subject_id: str,
    limit: int,
    newest_first: bool,
    cursor: str | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """One page of a subject's events and the cursor of the next (None at the end).

    Keyset paging on the event id (ids grow with insertion): each page is one range scan
    of ``ix_audit_subject`` (subject_type, subject_id, id) however long the history, and
    events recorded between two pages never make a page repeat or skip one."""
    stmt = select(AuditEvent).where(
        AuditEvent.subject_type == subject_type, AuditEvent.subject_id == subject_id
    )
    if cursor:
        last_id = _decode_cursor(cursor, newest_first)
        stmt = stmt.where(AuditEvent.id < last_id if newest_first else AuditEvent.id > last_id)
    order = AuditEvent.id.desc() if newest_first else AuditEvent.id.asc()
    rows = list(session.scalars(stmt.order_by(order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode_cursor(newest_first, rows[-1].id)
