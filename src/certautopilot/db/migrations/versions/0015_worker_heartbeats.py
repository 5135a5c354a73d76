"""worker heartbeats: one row per worker executor, rewritten every few seconds

``/readyz`` asks for at least one fresh row; the metrics export their ages; the recovery of
a dead worker's workflows (issue 13) claims a stale row through ``recovered_by``.

Revision ID: 0015_worker_heartbeats
Revises: 0012
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base

revision = "0015_worker_heartbeats"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("executor_id", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("app_version", sa.String(length=64), nullable=False),
        sa.Column("started_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recovered_by", sa.String(length=128), nullable=True),
        sa.Column("recovered_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_index(
        "ix_worker_heartbeats_last_seen_at", "worker_heartbeats", ["last_seen_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_worker_heartbeats_last_seen_at", table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
