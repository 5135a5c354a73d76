"""distribution targets can be disabled

A disabled target keeps its settings and its certificates but receives no deployment:
new versions are not sent to it, and a deploy request skips it. Issuers have had a
``status`` column from the start (``active``/``disabled``); targets get ``enabled``.

Revision ID: 0024_target_enabled
Revises: 0023_tick_indexes
Create Date: 2026-12-04 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_target_enabled"
down_revision = "0023_tick_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "distribution_targets",
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    with op.batch_alter_table("distribution_targets") as batch:
        batch.drop_column("enabled")
