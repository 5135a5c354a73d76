"""issuer fallback: a certificate's ordered fallback issuers, and the issuer of each version

``certificates.fallback_issuer_ids`` (null: the project policy's ``fallback_issuers``) and
``certificate_versions.issuer_id`` (null: the certificate's own issuer) - a version ordered
from a fallback issuer says so, so its order, revocation and renewal go to the right CA.

Revision ID: 0018_issuer_fallback
Revises: 0017
Create Date: 2026-12-03 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_issuer_fallback"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("fallback_issuer_ids", sa.JSON(), nullable=True))
    with op.batch_alter_table("certificate_versions") as batch:
        batch.add_column(sa.Column("issuer_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificate_versions") as batch:
        batch.drop_column("issuer_id")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("fallback_issuer_ids")
