"""A deployment's states and the moves between them (``workflows/distribution.py``).

``pending`` → ``running`` → ``succeeded`` | ``failed``, or ``retrying`` between attempts
and back to ``running``; ``superseded`` (from any unfinished state) when a newer version
reached the target first. A ``running`` row is run again after a crash.
"""

from __future__ import annotations

from enum import StrEnum

from certautopilot.statemachine import Machine


class DeployStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"


D = DeployStatus
FINAL = frozenset({D.SUCCEEDED, D.FAILED, D.SUPERSEDED})
BUSY = frozenset({D.PENDING, D.RUNNING, D.RETRYING})
MOVES: dict[DeployStatus, frozenset[DeployStatus]] = {
    D.PENDING: frozenset({D.RUNNING, D.SUPERSEDED}),
    D.RUNNING: frozenset({D.SUCCEEDED, D.RETRYING, D.FAILED, D.SUPERSEDED}),
    D.RETRYING: frozenset({D.RUNNING, D.SUPERSEDED}),
    D.SUCCEEDED: frozenset(),
    D.FAILED: frozenset(),
    D.SUPERSEDED: frozenset(),
}
DEPLOYMENT = Machine("deployment", DeployStatus, MOVES)


def transition(current: str, new: DeployStatus) -> DeployStatus:
    """The deployment's next status; IllegalTransition (409) when the table forbids it."""
    return DEPLOYMENT.move(current, new)
