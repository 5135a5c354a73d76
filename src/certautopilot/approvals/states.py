"""An approval request's states: ``pending`` until decided or past its expiry; then final."""

from __future__ import annotations

from enum import StrEnum

from certautopilot.statemachine import Machine


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


R = RequestStatus
MOVES: dict[RequestStatus, frozenset[RequestStatus]] = {
    R.PENDING: frozenset({R.APPROVED, R.REJECTED, R.EXPIRED}),
    R.APPROVED: frozenset(),
    R.REJECTED: frozenset(),
    R.EXPIRED: frozenset(),
}
APPROVAL_REQUEST = Machine("approval request", RequestStatus, MOVES)


def transition(current: str, new: RequestStatus) -> RequestStatus:
    """The request's next status; IllegalTransition (409) when the table forbids it."""
    return APPROVAL_REQUEST.move(current, new)
