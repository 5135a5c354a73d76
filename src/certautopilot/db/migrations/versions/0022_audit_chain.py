"""the audit hash chain: seq, prev_hash and hash on audit_events, chain heads, checkpoints

Existing events are chained here, per project in id order, with the encoding of
``audit/chain.py`` (frozen below so later changes there do not change this migration).

Revision ID: 0022_audit_chain
Revises: 0019
Create Date: 2026-12-03 16:30:00
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

import certautopilot.db.base
from certautopilot.clock import as_utc

revision = "0022_audit_chain"
down_revision = "0021_imports"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
CHAIN_PAGE = 10_000  # events read and written back per round


def _hash(row: Any, seq: int, prev: str) -> str:
    fields = {
        "actor": row.actor,
        "at": as_utc(row.at).isoformat(timespec="microseconds"),
        "detail": row.detail,
        "prev_hash": prev,
        "project_id": row.project_id,
        "seq": seq,
        "subject_id": row.subject_id,
        "subject_type": row.subject_type,
        "type": row.type,
    }
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chain_heads")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("at", certautopilot.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("chain", "seq", name=op.f("uq_audit_checkpoints_chain")),
    )

    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("at", certautopilot.db.base.UTCDateTime(timezone=True)),
        sa.column("project_id", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("type", sa.String()),
        sa.column("subject_type", sa.String()),
        sa.column("subject_id", sa.String()),
        sa.column("detail", sa.JSON()),
        sa.column("seq", sa.BigInteger()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    heads = sa.table(
        "audit_chain_heads",
        sa.column("chain", sa.String()),
        sa.column("seq", sa.BigInteger()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    tips: dict[str, tuple[int, str]] = {}
    # Read in id order a page at a time and write each page back in one executemany: a
    # database with a million certificates holds millions of events, which neither fit in
    # memory at once nor take one round trip each in reasonable time.
    update = (
        events.update()
        .where(events.c.id == sa.bindparam("row_id"))
        .values(
            seq=sa.bindparam("new_seq"),
            prev_hash=sa.bindparam("new_prev"),
            hash=sa.bindparam("new_hash"),
        )
    )
    last = None
    while True:
        page = sa.select(events).order_by(events.c.id).limit(CHAIN_PAGE)
        if last is not None:
            page = page.where(events.c.id > last)
        rows = bind.execute(page).fetchall()
        if not rows:
            break
        changes = []
        for row in rows:
            chain = row.project_id or ""
            seq, prev = tips.get(chain, (0, GENESIS))
            seq += 1
            digest = _hash(row, seq, prev)
            changes.append({"row_id": row.id, "new_seq": seq, "new_prev": prev, "new_hash": digest})
            tips[chain] = (seq, digest)
        bind.execute(update, changes)
        last = rows[-1].id
    if tips:
        op.bulk_insert(
            heads, [{"chain": c, "seq": s, "hash": h} for c, (s, h) in sorted(tips.items())]
        )

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_audit_events_project_id"), ["project_id", "seq"]
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_project_id"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_heads")
