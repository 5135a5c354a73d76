"""The database session of the commands that work on this instance's database directly
(``token``, ``user``, ``sessions``): migrated, in one transaction, engine disposed after.

The database layers (SQLAlchemy models, Alembic) load here, when such a command runs, not
when the CLI starts: the remote commands (``certs list`` ...) never touch the database and
would otherwise pay about a second of imports on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from certautopilot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@contextmanager
def local_session(settings: Settings) -> Iterator[Session]:
    """One transaction on the instance's database, migrated to the current schema first."""
    from certautopilot.db.migrate import upgrade
    from certautopilot.db.session import make_engine, make_sessionmaker, transaction

    upgrade(settings)
    engine = make_engine(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()
