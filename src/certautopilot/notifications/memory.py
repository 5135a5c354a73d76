"""The in-memory twin of a notification sender: messages land in an outbox list.

It keeps the :class:`~certautopilot.notifications.interfaces.Sender` contract the SMTP
and webhook senders keep (tests/conformance/test_senders.py runs against all three): a
delivered message keeps its subject, text, link and recipients; a receiver that is down
or refuses raises :class:`NotificationError`; no credential shows in an error or a
``repr``. Not registered as a production channel: the outbox lives in this process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from certautopilot.errors import NotificationError
from certautopilot.notifications.interfaces import Message


@dataclass
class Outbox:
    """What memory senders delivered. ``reachable`` False: as if the server were down;
    ``refuse`` True: as if it answered with an error."""

    messages: list[Message] = field(default_factory=list)
    reachable: bool = True
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class MemorySender:
    def __init__(self, outbox: Outbox | None = None, secret: str | None = None) -> None:
        self.outbox = outbox if outbox is not None else Outbox()
        self.secret = secret

    def __repr__(self) -> str:
        return f"MemorySender(delivered={len(self.outbox.messages)})"

    def send(self, message: Message) -> None:
        if not self.outbox.reachable:
            raise NotificationError("memory outbox: unreachable")
        if self.outbox.refuse:
            raise NotificationError("memory outbox: refused the message")
        with self.outbox.lock:
            self.outbox.messages.append(message)
