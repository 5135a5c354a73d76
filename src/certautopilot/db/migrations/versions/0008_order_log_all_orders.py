"""order log counts every new ACME order: version (idempotent), exact names, CA

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("renewal_order_log") as batch:
        batch.add_column(sa.Column("version_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("names_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("ca_key", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_renewal_order_log_names_at", "renewal_order_log", ["names_key", "at"], unique=False
    )
    op.create_index(
        "uq_renewal_order_log_version_domain",
        "renewal_order_log",
        ["version_id", "registered_domain"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_renewal_order_log_version_domain", table_name="renewal_order_log")
    op.drop_index("ix_renewal_order_log_names_at", table_name="renewal_order_log")
    with op.batch_alter_table("renewal_order_log") as batch:
        batch.drop_column("ca_key")
        batch.drop_column("names_key")
        batch.drop_column("version_id")
