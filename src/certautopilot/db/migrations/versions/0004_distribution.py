"""distribution: targets, their attachment to certificates, deployments

Revision ID: 0004_distribution
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base

revision = "0004_distribution"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = certautopilot.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "distribution_targets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("credentials_secret_id", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_distribution_targets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distribution_targets")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_distribution_targets_project_id")),
    )
    op.create_table(
        "certificate_targets",
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_targets_certificate_id_certificates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["distribution_targets.id"],
            name=op.f("fk_certificate_targets_target_id_distribution_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("certificate_id", "target_id", name=op.f("pk_certificate_targets")),
    )
    with op.batch_alter_table("certificate_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificate_targets_target_id"), ["target_id"], unique=False
        )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("requested_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_deployments_certificate_id_certificates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["distribution_targets.id"],
            name=op.f("fk_deployments_target_id_distribution_targets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["certificate_versions.id"],
            name=op.f("fk_deployments_version_id_certificate_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deployments_cert_target", ["certificate_id", "target_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deployments_target_id"), ["target_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_target_id"))
        batch_op.drop_index("ix_deployments_cert_target")
    op.drop_table("deployments")
    with op.batch_alter_table("certificate_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificate_targets_target_id"))
    op.drop_table("certificate_targets")
    op.drop_table("distribution_targets")
