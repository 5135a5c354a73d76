"""DNS zones can be disabled

A disabled zone keeps its settings and its certificates' routing, but no DNS-01 record
is written in it: a new request whose names are routed there is refused, a renewal by
hand is refused, and the scheduler defers its certificates' renewals until an admin
enables the zone again (issuers have ``status``, targets ``enabled``; zones get
``enabled`` too).

Revision ID: 0026_zone_enabled
Revises: 0025_token_scope
Create Date: 2026-12-04 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_zone_enabled"
down_revision = "0025_token_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "dns_zones",
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    with op.batch_alter_table("dns_zones") as batch:
        batch.drop_column("enabled")
