"""Fixtures of the ACME client's unit tests: a stub CA on loopback and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _acme_stub_server import StubCA, stub_ca
from tests.fakes import FakeClock


@pytest.fixture
def ca() -> Iterator[StubCA]:
    with stub_ca() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
