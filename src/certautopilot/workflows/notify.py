"""Durable delivery of one notification, with retries; a failure never blocks issuance."""

from __future__ import annotations

from dbos import DBOS

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.clock import utcnow
from certautopilot.errors import NotificationError
from certautopilot.notifications import service as notifications
from certautopilot.notifications.models import Notification, NotificationChannel
from certautopilot.notifications.states import DeliveryStatus, transition
from certautopilot.workflows import counted
from certautopilot.workflows.records import tx
from certautopilot.workflows.runtime import runtime

QUEUE = "notifications"
WORKFLOW_NAME = "deliver_notification"


def workflow_id(notification_id: str) -> str:
    return f"notify:{notification_id}"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, NotificationError)


@DBOS.step(
    name="notify.send",
    retries_allowed=True,
    max_attempts=3,
    interval_seconds=1.0,
    backoff_rate=3.0,
    should_retry=_retryable,
)
def send(notification_id: str) -> None:
    with tx() as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        if row.status == DeliveryStatus.SENT:
            return
        channel = session.get(NotificationChannel, row.channel_id)
        assert channel is not None
        sender = notifications.sender_for(session, runtime().kek, channel)
        message = notifications.message_of(row)
    sender.send(message)
    with tx() as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        row.status = transition(row.status, DeliveryStatus.SENT)
        row.sent_at = utcnow()


@DBOS.step(name="notify.failed")
def failed(notification_id: str, error: str) -> None:
    with tx() as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        row.status = transition(row.status, DeliveryStatus.FAILED)
        row.last_error = error
        channel = session.get(NotificationChannel, row.channel_id)
        counted.notification_failed(session, channel_kind=channel.kind if channel else "unknown")
        subject = (
            ("certificate", row.certificate_id)
            if row.certificate_id
            else ("project", row.project_id)
        )
        audit.record(
            session,
            type=EventType.NOTIFICATION_FAILED,
            actor=audit.SYSTEM_ACTOR,
            project_id=row.project_id,
            subject_type=subject[0],
            subject_id=subject[1],
            detail={
                "event": row.event,
                "channel": channel.name if channel else row.channel_id,
                "error": error,
            },
        )


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=None)
def deliver_notification(notification_id: str) -> str:
    try:
        send(notification_id)
        return "sent"
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        last = errors[-1] if errors else exc
        failed(notification_id, str(last)[:500])
        return "failed"
