"""inventory: an index per sort key on (project_id, key, id), and one for the issuer filter

The inventory pages on (sort key, id) within a project (keyset paging), so each sort key
gets a composite index ending in the id; status and not_after replace their two-column
indexes of 0001 (same names; the prefix still serves every earlier query).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

REPLACED = {
    "ix_certificates_project_status": ["project_id", "status"],
    "ix_certificates_project_not_after": ["project_id", "not_after"],
}
NEW = {
    "ix_certificates_project_status": ["project_id", "status", "id"],
    "ix_certificates_project_not_after": ["project_id", "not_after", "id"],
    "ix_certificates_project_created_at": ["project_id", "created_at", "id"],
    "ix_certificates_project_common_name": ["project_id", "common_name", "id"],
    "ix_certificates_project_issuer": ["project_id", "issuer_id", "not_after"],
}


def upgrade() -> None:
    for name in REPLACED:
        op.drop_index(name, table_name="certificates")
    for name, columns in NEW.items():
        op.create_index(name, "certificates", columns, unique=False)


def downgrade() -> None:
    for name in NEW:
        op.drop_index(name, table_name="certificates")
    for name, columns in REPLACED.items():
        op.create_index(name, "certificates", columns, unique=False)
