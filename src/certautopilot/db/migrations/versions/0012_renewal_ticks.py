"""renewal ticks: an index on renewal_states.version_id, and when a renewal was deferred

``reconcile`` looks up the states whose started renewal has ended (``version_id`` set and
joined to its version); without an index it scanned all of renewal_states every tick.
``deferred_at`` is when the budget last deferred the certificate, so a deferral is recorded
(``renewal.deferred``) once per certificate per budget window, not on every tick.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_renewal_states_version_id", "renewal_states", ["version_id"], unique=False)
    with op.batch_alter_table("renewal_states") as batch:
        batch.add_column(
            sa.Column(
                "deferred_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("renewal_states") as batch:
        batch.drop_column("deferred_at")
    op.drop_index("ix_renewal_states_version_id", table_name="renewal_states")
