"""imports and expiry digests: imported (unmanaged) certificates, per-project expiry rules

``certificates.managed`` (false: imported, never renewed until adopted), ``import_source``
and ``import_meta``; ``expiry_alert_rules`` (a project's thresholds), ``expiry_digests``
(one per project and UTC day) and ``expiry_alert_marks`` (each version listed once per
threshold).

Revision ID: 0021_imports
Revises: 0019
Create Date: 2026-12-03 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from certautopilot.db.base import UTCDateTime

revision = "0021_imports"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, not a batch: on SQLite a batch copies the table, which
    # drops its triggers (migration 0011's expiry counts and name search).
    op.add_column(
        "certificates",
        sa.Column("managed", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("certificates", sa.Column("import_source", sa.String(length=16), nullable=True))
    op.add_column("certificates", sa.Column("import_meta", sa.JSON(), nullable=True))
    op.create_index(
        "ix_certificates_project_managed", "certificates", ["project_id", "managed", "id"]
    )
    op.create_table(
        "expiry_alert_rules",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("thresholds_days", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_expiry_alert_rules_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_expiry_alert_rules")),
    )
    op.create_table(
        "expiry_digests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("certificates", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_expiry_digests_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expiry_digests")),
        sa.UniqueConstraint("project_id", "day", name=op.f("uq_expiry_digests_project_id")),
    )
    op.create_table(
        "expiry_alert_marks",
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("threshold_days", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["certificate_versions.id"],
            name=op.f("fk_expiry_alert_marks_version_id_certificate_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "threshold_days", name=op.f("pk_expiry_alert_marks")),
    )


def downgrade() -> None:
    op.drop_table("expiry_alert_marks")
    op.drop_table("expiry_digests")
    op.drop_table("expiry_alert_rules")
    op.drop_index("ix_certificates_project_managed", table_name="certificates")
    # ALTER TABLE DROP COLUMN (SQLite 3.35+ too): a batch would drop the table's triggers.
    for column in ("import_meta", "import_source", "managed"):
        op.execute(f"ALTER TABLE certificates DROP COLUMN {column}")
