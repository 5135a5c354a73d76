"""Port of the notifications domain: a channel sender."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """What a person is told: never a secret; a link to where they act."""

    event: str
    subject: str
    text: str
    link: str | None
    recipients: tuple[str, ...]
    certificate_id: str | None
    project_id: str


class Sender(Protocol):
    """Delivers one message; raises :class:`certautopilot.errors.NotificationError`."""

    def send(self, message: Message) -> None: ...
