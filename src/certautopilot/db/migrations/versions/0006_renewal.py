"""renewal scheduler: per-certificate renewal state, order log for rate-limit budgets

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "renewal_states",
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=True),
        sa.Column("from_version_id", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "last_failure_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("gave_up_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("warnings_sent", sa.JSON(), nullable=False),
        sa.Column("acme_profile", sa.String(length=64), nullable=True),
        sa.Column("ari_window", sa.JSON(), nullable=True),
        sa.Column(
            "ari_next_check_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_renewal_states_certificate_id_certificates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_renewal_states")),
    )
    op.create_table(
        "renewal_order_log",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("registered_domain", sa.String(length=253), nullable=False),
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"],
            ["issuers.id"],
            name=op.f("fk_renewal_order_log_issuer_id_issuers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renewal_order_log")),
    )
    op.create_index(
        "ix_renewal_order_log_issuer_at", "renewal_order_log", ["issuer_id", "at"], unique=False
    )
    op.create_index(
        "ix_renewal_order_log_domain_at",
        "renewal_order_log",
        ["registered_domain", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_renewal_order_log_domain_at", table_name="renewal_order_log")
    op.drop_index("ix_renewal_order_log_issuer_at", table_name="renewal_order_log")
    op.drop_table("renewal_order_log")
    op.drop_table("renewal_states")
