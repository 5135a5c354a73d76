"""Who created an object and who last changed it, read from its audit events.

Every change to an issuer, zone, target or certificate is an audit event naming its actor
(``audit.record``), in a tamper-evident chain: the trail already records who did what, so
authorship is read from it rather than kept in columns that could disagree with it. The
first event of a subject is its creation; the last one by a person (not the service's own
``system`` or ``scheduler``) is its last change. Three indexed reads for any number of
subjects (``ix_audit_subject``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.audit.models import AuditEvent
from certautopilot.audit.service import SYSTEM_ACTOR
from certautopilot.clock import as_utc

#: Actors that are the service itself: their events are not a person's change.
SERVICE_ACTORS = (SYSTEM_ACTOR, "scheduler")


@dataclass(frozen=True)
class Authorship:
    created_by: str
    created_at: datetime
    #: None when nobody changed it since it was created
    changed_by: str | None = None
    changed_at: datetime | None = None


def authorship(session: Session, *, subject_type: str, ids: Sequence[str]) -> dict[str, Authorship]:
    """Per subject id with any event: who created it and who last changed it."""
    if not ids:
        return {}
    of_these = (AuditEvent.subject_type == subject_type, AuditEvent.subject_id.in_(list(ids)))
    first = dict(
        session.execute(
            select(AuditEvent.subject_id, func.min(AuditEvent.id))
            .where(*of_these)
            .group_by(AuditEvent.subject_id)
        ).all()
    )
    last = dict(
        session.execute(
            select(AuditEvent.subject_id, func.max(AuditEvent.id))
            .where(*of_these, AuditEvent.actor.not_in(SERVICE_ACTORS))
            .group_by(AuditEvent.subject_id)
        ).all()
    )
    wanted = set(first.values()) | set(last.values())
    events = {e.id: e for e in session.scalars(select(AuditEvent).where(AuditEvent.id.in_(wanted)))}
    out: dict[str, Authorship] = {}
    for subject_id, first_id in first.items():
        made = events[first_id]
        change = events.get(last.get(subject_id, first_id))
        if change is None or change.id == made.id:
            out[subject_id] = Authorship(made.actor, as_utc(made.at))
        else:
            out[subject_id] = Authorship(
                made.actor, as_utc(made.at), change.actor, as_utc(change.at)
            )
    return out
