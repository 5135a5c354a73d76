from __future__ import annotations

from typing import Any

from alembic import context

from certautopilot.config import Settings
from certautopilot.db.models import Base
from certautopilot.db.session import make_engine

OUR_TABLES = set(Base.metadata.tables)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # DBOS's system tables share SQLite's namespace: never touch what is not ours.
    if type_ == "table":
        return name in OUR_TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name in OUR_TABLES


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    settings = Settings.from_env()
    if url:
        settings = Settings(data_dir=settings.data_dir, database_url=url)
    engine = make_engine(settings)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=include_object,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
