"""A notification channel plugin from another package can be created with its own block."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from certautopilot import plugins
from certautopilot.notifications.interfaces import Message
from tests.conftest import Project, Service


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str
    api_token: str | None = plugins.secret_field(default=None, repr=False)


class ChatChannel:
    """A third-party channel: ``{"kind": "chat-room", "chat_room": {...}}``."""

    name: ClassVar[str] = "chat-room"
    title: ClassVar[str] = "Chat room"
    config_model: ClassVar[type[ChatConfig]] = ChatConfig

    def __init__(self, config: ChatConfig) -> None:
        self.config = config

    def send(self, message: Message) -> None:
        return None


@pytest.fixture
def chat_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def source(group: str) -> Iterable[EntryPoint]:
        yield from entry_points(group=group)
        if group == plugins.Family.NOTIFICATION_CHANNELS.value:
            value = f"{__name__}:ChatChannel"
            yield EntryPoint(name="chat-room", value=value, group=group)

    monkeypatch.setattr(plugins, "_registry", plugins.Registry(source))
    yield


def test_a_third_party_channel_is_created_from_its_block(
    service: Service, project: Project, chat_plugin: None
) -> None:
    base = f"/projects/{project.slug}/notification-channels"
    body = {"name": "ops room", "kind": "chat-room", "chat_room": {"room": "#ops"}}
    created = service.ok("POST", base, 201, json=body)
    assert created["kind"] == "chat-room"
    stray = service.call("POST", base, json={**body, "name": "two", "other": {}})
    assert stray.status_code == 422
    assert [e["field"] for e in stray.json()["errors"]] == ["other"]
