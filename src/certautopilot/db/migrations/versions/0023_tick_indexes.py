"""the renewal tick's reads by index: due renewals in urgency order, due ARI checks

At a million certificates the tick spent 1.9 s ordering every issued certificate to find
the ARI checks due and 0.6 s sorting a storm's due renewals. ``ix_renewal_states_ari_check``
(which also serves what ``ix_renewal_states_version_id`` did) and ``ix_certificates_due``
let both stop after a batch. The ARI read now goes through ``renewal_states`` only, so the
issued certificates of ACME issuers that have no state row yet get one here.

Revision ID: 0023_tick_indexes
Revises: 0022_audit_chain
Create Date: 2026-12-03 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from certautopilot.clock import utcnow
from certautopilot.db.base import UTCDateTime

revision = "0023_tick_indexes"
down_revision = "0022_audit_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    certificates = sa.table(
        "certificates",
        sa.column("id", sa.String()),
        sa.column("issuer_id", sa.String()),
        sa.column("current_version_id", sa.String()),
    )
    issuers = sa.table("issuers", sa.column("id", sa.String()), sa.column("kind", sa.String()))
    states = sa.table(
        "renewal_states",
        sa.column("certificate_id", sa.String()),
        sa.column("attempts", sa.Integer()),
        sa.column("warnings_sent", sa.JSON()),
        sa.column("updated_at", UTCDateTime(timezone=True)),
    )
    missing = (
        sa.select(
            certificates.c.id,
            sa.literal(0),
            sa.literal([], sa.JSON()),
            sa.literal(utcnow(), UTCDateTime(timezone=True)),
        )
        .join(issuers, issuers.c.id == certificates.c.issuer_id)
        .where(
            issuers.c.kind == "acme",
            certificates.c.current_version_id.is_not(None),
            ~sa.exists().where(states.c.certificate_id == certificates.c.id),
        )
    )
    op.execute(
        states.insert().from_select(
            ["certificate_id", "attempts", "warnings_sent", "updated_at"], missing
        )
    )
    op.create_index(
        "ix_renewal_states_ari_check", "renewal_states", ["version_id", "ari_next_check_at"]
    )
    op.drop_index("ix_renewal_states_version_id", table_name="renewal_states")
    op.create_index(
        "ix_certificates_due",
        "certificates",
        ["auto_renew", "csr_provided", "not_after", "next_renewal_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_due", table_name="certificates")
    op.create_index("ix_renewal_states_version_id", "renewal_states", ["version_id"])
    op.drop_index("ix_renewal_states_ari_check", table_name="renewal_states")
