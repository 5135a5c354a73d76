"""an index on renewal_states.deferred_at

The renewal backlog (``renewal/backlog.py``) counts the certificates the order budget holds
back on every inventory page view; without an index that count read all of renewal_states.

Revision ID: 0019
Revises: 0018_issuer_fallback
Create Date: 2026-12-03 14:25:00
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018_issuer_fallback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_renewal_states_deferred_at", "renewal_states", ["deferred_at"])


def downgrade() -> None:
    op.drop_index("ix_renewal_states_deferred_at", table_name="renewal_states")
