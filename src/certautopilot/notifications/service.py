"""Notification channels of a project, and who is told what.

``notify`` writes one outbox row per channel in the caller's transaction; the caller
enqueues their delivery (``NotificationLauncher``) in that same transaction, so a message
is never lost nor sent for something that was rolled back. Delivery never blocks issuance.
"""

from __future__ import annotations

from typing import Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.models import Membership, User
from certautopilot.auth.service import Actor, require
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.errors import InvalidInput
from certautopilot.notifications.interfaces import Message, Sender
from certautopilot.notifications.models import Notification, NotificationChannel
from certautopilot.notifications.schemas import ChannelIn, ChannelOut
from certautopilot.plugins import Family, registry


class NotificationLauncher(Protocol):
    def enqueue_notifications(self, session: Session, notification_ids: list[str]) -> None: ...


def create_channel(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, body: ChannelIn, actor: Actor
) -> NotificationChannel:
    require(actor, "admin", "Adding a notification channel")
    channel = NotificationChannel(
        id=new_id(), project_id=project_id, name=body.name, kind=body.kind
    )
    plugin = registry().get(Family.NOTIFICATION_CHANNELS, body.kind)
    field = body.kind.replace("-", "_")
    raw = body.block()
    if raw is None:
        raise InvalidInput.field(field, f"is required when kind is {body.kind}")
    for other in body.model_extra or {}:
        if other != field:  # a third-party kind's own block arrives as an extra
            raise InvalidInput.field(other, "Extra inputs are not permitted")
    for known in ("email", "webhook"):
        if known != field and getattr(body, known) is not None:
            raise InvalidInput.field(known, f"only applies when kind is {known}")
    config = plugin.parse_config(raw, field_prefix=field)
    hook = getattr(plugin.cls, "validate", None)
    if callable(hook):
        hook(config, field)
    # One secret per channel (the first field marked secret), stored encrypted.
    names = plugin.secrets
    channel.config = config.model_dump(mode="json", exclude=set(names))
    secret: str | None = getattr(config, names[0], None) if names else None
    if secret:
        channel.secret_id = secrets.store_secret(
            session,
            kek,
            owner_table="notification_channels",
            owner_id=channel.id,
            purpose=f"{body.kind}_secret",
            plaintext=secret.encode(),
        ).id
    session.add(channel)
    audit.record(
        session,
        type=EventType.NOTIFICATION_CHANNEL_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="project",
        subject_id=project_id,
        detail={"name": body.name, "kind": body.kind},
    )
    return channel


def list_channels(session: Session, *, project_id: str) -> list[NotificationChannel]:
    stmt = select(NotificationChannel).where(NotificationChannel.project_id == project_id)
    return list(session.scalars(stmt.order_by(NotificationChannel.name)))


def to_out(channel: NotificationChannel) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        config=dict(channel.config),
        has_secret=channel.secret_id is not None,
    )


def emails_with_roles(session: Session, project_id: str, roles: tuple[str, ...]) -> list[str]:
    stmt = (
        select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project_id, Membership.role.in_(roles))
        .order_by(User.email)
    )
    return list(session.scalars(stmt))


def notify(
    session: Session,
    launcher: NotificationLauncher,
    *,
    project_id: str,
    event: str,
    recipients: list[str],
    subject: str,
    text: str,
    link: str | None,
    certificate_id: str | None,
) -> list[Notification]:
    rows = [
        Notification(
            project_id=project_id,
            channel_id=channel.id,
            event=event,
            certificate_id=certificate_id,
            recipients=recipients,
            subject=subject,
            text=text,
            link=link,
        )
        for channel in list_channels(session, project_id=project_id)
    ]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    launcher.enqueue_notifications(session, [r.id for r in rows])
    return rows


def sender_for(session: Session, kek: KeyEncryptionKey, channel: NotificationChannel) -> Sender:
    secret = None
    if channel.secret_id:
        secret = secrets.reveal_secret(
            session,
            kek,
            channel.secret_id,
            owner_table="notification_channels",
            owner_id=channel.id,
            purpose=f"{channel.kind}_secret",
        ).decode()
    plugin = registry().get(Family.NOTIFICATION_CHANNELS, channel.kind)
    stored = dict(channel.config)
    if secret is not None and plugin.secrets:
        stored[plugin.secrets[0]] = secret
    sender = plugin.cls(plugin.config_model.model_validate(stored))
    assert hasattr(sender, "send")
    return cast(Sender, sender)


def message_of(row: Notification) -> Message:
    return Message(
        event=row.event,
        subject=row.subject,
        text=row.text,
        link=row.link,
        recipients=tuple(row.recipients),
        certificate_id=row.certificate_id,
        project_id=row.project_id,
    )
