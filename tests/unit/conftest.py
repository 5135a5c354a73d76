"""Fixtures shared by the unit tests (the test doubles themselves live in tests/fakes.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from certautopilot.db import models


@pytest.fixture
def session() -> Iterator[Session]:
    """A session on a fresh in-memory SQLite database with every table; a module that
    needs more set up (test_profile_shown) defines its own ``session``."""
    engine = create_engine("sqlite://")
    models.Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()
