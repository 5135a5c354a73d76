"""Test doubles shared by several test modules (they were pasted into each before).

Fakes of the *surroundings* only — time and the durable-workflow launcher — never of the
code under test: the rules run for real against a real (SQLite) database.
"""

from __future__ import annotations

from sqlalchemy.orm import Session


class FakeClock:
    """A monotonic clock whose ``sleep`` returns at once and moves time on; ``sleeps``
    records every wait, so a test asserts the polling schedule without waiting it out."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingLauncher:
    """Stands in for the DBOS launcher (``NotificationLauncher`` and the issuance
    launcher): records what would have been enqueued, in the caller's transaction."""

    def __init__(self) -> None:
        self.issuances: list[str] = []
        self.notifications: list[str] = []

    def enqueue_issuance(
        self, session: Session, version_id: str, *, approval: bool = False, kind: str = "acme"
    ) -> None:
        self.issuances.append(version_id)

    def enqueue_notifications(self, session: Session, notification_ids: list[str]) -> None:
        self.notifications.extend(notification_ids)
