"""Applies the Alembic migrations of our tables, then DBOS's own system tables."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from certautopilot.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), "heads")
    from certautopilot.workflows.launcher import migrate_system_database

    migrate_system_database(settings)
