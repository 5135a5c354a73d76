"""Port of the notifications domain: a channel sender."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class Sender(Protocol):
    """Delivers one message; raises :class:`certautopilot.errors.NotificationError`.

    The contract every sender keeps (checked for SMTP, webhook and the in-memory twin
    ``notifications/memory.py`` by tests/conformance/test_senders.py):

    * The message arrives with its subject, text and link (no link, no "None"); a sender
      that addresses people (email) sends to ``recipients`` and sends nothing when there
      are none; a channel (webhook) posts whatever the recipients.
    * A receiver that is down, answers with an error, or is a destination the operator
      did not allow raises ``NotificationError``, never another exception type (the
      workflow retries that type and then marks the notification failed).
    * No credential (SMTP password, webhook secret) appears in what arrives, in an
      error or in a ``repr``; a webhook secret signs the body instead.
    """

    def send(self, message: Message) -> None: ...
