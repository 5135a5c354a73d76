"""Audit events: one append-only row per state change, typed with a dotted name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit.events import EventType
from certautopilot.audit.models import AuditEvent
from certautopilot.clock import utcnow

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
    session.add(event)
    return event


def events_for(session: Session, *, subject_type: str, subject_id: str) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == subject_id)
        .order_by(AuditEvent.id)
    )
    return list(session.scalars(stmt))
