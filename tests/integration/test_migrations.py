"""The migrations and the models describe one schema: one head, and a migrated database
that Alembic's autogenerate finds nothing to change in (on SQLite and PostgreSQL). A model
change without its migration, or two migrations branching from one parent (helpers working
side by side), fails here instead of on a user's upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from certautopilot.config import Settings
from certautopilot.db.migrate import alembic_config
from certautopilot.db.models import Base
from certautopilot.db.session import make_engine
from tests.conftest import backends, fresh_database
from tests.integration.live_server import prepared_settings


def test_the_migrations_have_one_head(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    heads = ScriptDirectory.from_config(alembic_config(settings)).get_heads()
    assert len(heads) == 1, f"the migrations branch: heads {heads}"


@pytest.mark.parametrize("backend", backends())
def test_a_migrated_database_matches_the_models(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path, prefix="cap_migrations") as url:
        settings = prepared_settings(url, tmp_path / "data")  # runs the migrations
        engine = make_engine(settings)
        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(
                    conn, opts={"compare_type": True, "include_object": _ours}
                )
                diff = compare_metadata(context, Base.metadata)
        finally:
            engine.dispose()
    assert diff == [], diff


# PostgreSQL-only indexes that migration 0011 creates in SQL (operator classes the models
# cannot state): not on the models, on purpose.
SQL_ONLY_INDEXES = {"ix_certificates_names_trgm", "ix_certificates_project_common_name_prefix"}


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Our tables only (as the migrations' env.py): DBOS's share SQLite's namespace."""
    if type_ == "index" and name in SQL_ONLY_INDEXES:
        return False
    if type_ == "table":
        return name in Base.metadata.tables
    table = getattr(obj, "table", None)
    return table is None or table.name in Base.metadata.tables
