"""Fixtures shared by the integration modules: the real SMTP server and webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration._receivers import Inbox, smtp_server, webhook_receiver


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, Inbox]]:
    """An aiosmtpd server on a free port and the mails it received (one per module)."""
    with smtp_server() as found:
        yield found


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """A webhook receiver on a free port and the JSON bodies it received (one per module)."""
    with webhook_receiver() as found:
        yield found
