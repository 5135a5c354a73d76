"""Steps of the approval wait: how long is left, and what was decided (or expiry)."""

from __future__ import annotations

from sqlalchemy import select

from certautopilot.approvals import service as approvals
from certautopilot.approvals.models import ApprovalRequest
from certautopilot.approvals.states import RequestStatus
from certautopilot.clock import utcnow
from certautopilot.errors import NotFound
from certautopilot.workflows.records import tx
from certautopilot.workflows.retries import db_step

MAX_WAIT = 3600.0  # re-read at least hourly, so a lost wake-up costs at most an hour


def _request(version_id: str) -> ApprovalRequest:
    with tx() as session:
        row = session.scalar(
            select(ApprovalRequest).where(ApprovalRequest.version_id == version_id)
        )
        if row is None:
            raise NotFound(f"no approval request for version {version_id}")
        session.expunge(row)
        return row


@db_step("approval.seconds_left")
def seconds_left(version_id: str) -> float:
    row = _request(version_id)
    if row.status != RequestStatus.PENDING:
        return 0.0
    return min(MAX_WAIT, (row.expires_at - utcnow()).total_seconds())


@db_step("approval.decision")
def decision(version_id: str) -> str:
    """The request's status; a pending request past its expiry becomes ``expired``."""
    with tx() as session:
        row = session.scalar(
            select(ApprovalRequest).where(ApprovalRequest.version_id == version_id)
        )
        if row is None:
            raise NotFound(f"no approval request for version {version_id}")
        approvals.expire(session, row=row, now=utcnow())
        return str(row.status)  # a plain string in the workflow's recorded output
