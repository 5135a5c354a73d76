"""AD CS: the template of each certificate, the CA request of each version

Revision ID: 0003_adcs
Revises: 0001
Create Date: 2026-11-29 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base

revision = "0003_adcs"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adcs_certificate_profiles",
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_adcs_certificate_profiles_certificate_id_certificates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_adcs_certificate_profiles")),
    )
    op.create_table(
        "adcs_requests",
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disposition", sa.String(length=500), nullable=True),
        sa.Column("submitted_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "last_checked_at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["certificate_versions.id"],
            name=op.f("fk_adcs_requests_version_id_certificate_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_adcs_requests")),
    )
    with op.batch_alter_table("adcs_requests", schema=None) as batch_op:
        batch_op.create_index("ix_adcs_requests_certificate", ["certificate_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("adcs_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_adcs_requests_certificate")
    op.drop_table("adcs_requests")
    op.drop_table("adcs_certificate_profiles")
