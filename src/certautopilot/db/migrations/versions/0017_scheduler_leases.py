"""scheduler leases: the row a renewal tick holds while it runs

A tick longer than the schedule interval overlapped the next one; the lease makes ticks
take turns, and expires so a worker that died holding it does not stop later ticks.

Also the point where the three lines of migrations meet (0003_adcs and 0004_distribution
branched from 0001), so from here on there is one head (``tests/integration/
test_migrations.py`` keeps it so).

Revision ID: 0017
Revises: 0003_adcs, 0004_distribution, 0016_invitations
Create Date: 2026-12-03 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base

revision = "0017"
down_revision = ("0003_adcs", "0004_distribution", "0016_invitations")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("acquired_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
