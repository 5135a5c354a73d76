"""The notification ``Sender`` contract, run against the in-memory twin, SMTP (a real
aiosmtpd server with AUTH) and webhook (a real local HTTP receiver, HMAC checked).

A message arrives with its subject, text and link (and, where the channel addresses
people, its recipients); a receiver that is down, refuses, or may not be reached is a
``NotificationError`` and nothing else; no credential shows in what arrives, in an
error or in a ``repr``.
"""

from __future__ import annotations

import pytest

from certautopilot.errors import NotificationError
from certautopilot.notifications.interfaces import Message, Sender
from tests.conformance.conftest import SenderBackend

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

LINK = "https://cap.example.test/p/web/certificates/c-1"


def _message(subject: str = "Certificate www.example.test renewed", **extra: object) -> Message:
    fields: dict[str, object] = {
        "event": "certificate.renewed",
        "subject": subject,
        "text": "www.example.test was renewed; it expires on 2027-01-01.",
        "link": LINK,
        "recipients": ("alice@example.test", "bob@example.test"),
        "certificate_id": "c-1",
        "project_id": "p-1",
    }
    fields.update(extra)
    return Message(**fields)  # type: ignore[arg-type]


def _no_secret(backend: SenderBackend, *texts: object) -> None:
    for text in texts:
        for secret in backend.secrets:
            assert secret not in str(text), f"{backend.name}: a secret shows in {text!r}"


def test_a_message_arrives_with_subject_text_link_and_recipients(
    sender_backend: SenderBackend,
) -> None:
    sender = sender_backend.make()
    assert isinstance(sender, Sender)
    message = _message()
    sender.send(message)
    [got] = sender_backend.received()
    assert got.subject == message.subject
    assert message.text in got.body
    assert got.link == LINK
    if got.recipients is not None:
        assert set(got.recipients) == set(message.recipients)
    _no_secret(sender_backend, got, repr(sender), str(sender))


def test_messages_arrive_in_order_and_without_a_link_when_there_is_none(
    sender_backend: SenderBackend,
) -> None:
    sender = sender_backend.make()
    sender.send(_message("first"))
    sender.send(_message("second", link=None))
    got = sender_backend.received()
    assert [g.subject for g in got] == ["first", "second"]
    assert got[1].link is None
    assert "None" not in got[1].body


def test_no_recipients(sender_backend: SenderBackend) -> None:
    """Email has nobody to write to and sends nothing; a channel posts anyway."""
    sender_backend.make().send(_message(recipients=()))
    got = sender_backend.received()
    assert len(got) == (0 if sender_backend.addresses_people else 1)


def test_a_down_receiver_is_a_notification_error(sender_backend: SenderBackend) -> None:
    with pytest.raises(NotificationError) as caught:
        sender_backend.down().send(_message())
    _no_secret(sender_backend, caught.value, repr(caught.value))


def test_a_refusing_receiver_is_a_notification_error(sender_backend: SenderBackend) -> None:
    with pytest.raises(NotificationError) as caught:
        sender_backend.refusing().send(_message())
    _no_secret(sender_backend, caught.value, repr(caught.value))
    assert sender_backend.received() == []


def test_a_destination_the_operator_did_not_allow_is_a_notification_error(
    sender_backend: SenderBackend,
) -> None:
    if sender_backend.forbidden is None:
        pytest.skip(f"{sender_backend.name} has no destination guard")
    with pytest.raises(NotificationError):
        sender_backend.forbidden().send(_message())
