"""A notification's delivery states: ``pending`` until the channel took it or gave up."""

from __future__ import annotations

from enum import StrEnum

from certautopilot.statemachine import Machine


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


D = DeliveryStatus
MOVES: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    # A step that sent but crashed before recording it is re-run (at-least-once): a
    # "sent" row is left alone; a failed delivery is final (the failure is on the timeline).
    D.PENDING: frozenset({D.SENT, D.FAILED}),
    D.SENT: frozenset(),
    D.FAILED: frozenset(),
}
DELIVERY = Machine("notification delivery", DeliveryStatus, MOVES)


def transition(current: str, new: DeliveryStatus) -> DeliveryStatus:
    """The delivery's next status; IllegalTransition (409) when the table forbids it."""
    return DELIVERY.move(current, new)
