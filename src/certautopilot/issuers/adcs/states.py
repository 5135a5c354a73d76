"""An AD CS request's states (``AdcsRequest.status``), as the CA reports them.

``submitted`` until the CA answers; ``pending`` while a CA manager has to approve it;
``issued`` or ``denied`` once the CA decided (a request the CA issued at once goes there
straight from ``submitted``).
"""

from __future__ import annotations

from enum import StrEnum

from certautopilot.statemachine import Machine


class AdcsStatus(StrEnum):
    SUBMITTED = "submitted"
    PENDING = "pending"
    ISSUED = "issued"
    DENIED = "denied"


A = AdcsStatus
MOVES: dict[AdcsStatus, frozenset[AdcsStatus]] = {
    A.SUBMITTED: frozenset({A.PENDING, A.ISSUED, A.DENIED}),
    A.PENDING: frozenset({A.ISSUED, A.DENIED}),
    A.ISSUED: frozenset(),
    A.DENIED: frozenset(),
}
ADCS_REQUEST = Machine("AD CS request", AdcsStatus, MOVES)


def transition(current: str, new: AdcsStatus) -> AdcsStatus:
    """The request's next status; IllegalTransition (409) when the table forbids it."""
    return ADCS_REQUEST.move(current, new)
