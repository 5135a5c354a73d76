"""API tokens get an expiry and a scope

A token may end on a date (``expires_at``), be limited to one project (``project_id``:
it can then reach nothing else, and goes with the project), and carry a role ceiling
(``role``: the token acts with the lower of it and its owner's role). Tokens made before
keep working as they did: no expiry, every project of their owner, the owner's role.

Revision ID: 0025_token_scope
Revises: 0024_target_enabled
Create Date: 2026-12-04 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from certautopilot.db.base import UTCDateTime

revision = "0025_token_scope"
down_revision = "0024_target_enabled"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("project_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch.create_foreign_key(
            "fk_api_tokens_project_id_projects",
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint("fk_api_tokens_project_id_projects", type_="foreignkey")
        batch.drop_column("role")
        batch.drop_column("project_id")
        batch.drop_column("expires_at")
