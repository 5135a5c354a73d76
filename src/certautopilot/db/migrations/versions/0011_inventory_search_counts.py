"""inventory at scale: a trigram index for search, expiry counts kept by triggers

Search (``q``, 3 characters or more) on PostgreSQL reads a GIN trigram index (pg_trgm)
over the certificate's names joined by a newline (``certificate_names_text``, an IMMUTABLE
SQL function, so an expression index can hold it); a shorter ``q`` is a prefix of the
common name, read from a ``text_pattern_ops`` btree (right in any collation). On SQLite
the same search reads an FTS5 trigram table (``certificate_names_fts``) kept by triggers.
The expiry
chart reads ``certificate_expiry_counts``: the certificates that are not revoked and have
a ``not_after``, counted per project, issuer and UTC day of expiry, kept exact by
triggers on ``certificates`` (insert, delete, and an update of project, issuer, expiry or
status), so no code path (the ORM, raw SQL, a cascade) can forget it. The timeline pages
on ``ix_audit_subject`` (subject, id), which 0001 already made.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COUNTED = "{row}.not_after IS NOT NULL AND {row}.status <> 'revoked'"
CHANGED = (
    "(OLD.not_after IS NOT NEW.not_after OR OLD.status IS NOT NEW.status"
    " OR OLD.project_id IS NOT NEW.project_id OR OLD.issuer_id IS NOT NEW.issuer_id)"
)

PG_FUNCTIONS = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # IMMUTABLE: the same JSON array always gives the same text (an index may hold it).
    """CREATE OR REPLACE FUNCTION certificate_names_text(names json) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT string_agg(value, E'\\n') FROM json_array_elements_text(names) AS value $$""",
    "CREATE INDEX ix_certificates_names_trgm ON certificates"
    " USING gin (certificate_names_text(names) gin_trgm_ops)",
    # q of 1-2 characters: a prefix of the common name, whatever the database's collation
    "CREATE INDEX ix_certificates_project_common_name_prefix ON certificates"
    " (project_id, common_name text_pattern_ops)",
    """CREATE OR REPLACE FUNCTION certificate_expiry_count() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' AND OLD.not_after IS NOT NULL AND OLD.status <> 'revoked' THEN
        UPDATE certificate_expiry_counts SET n = n - 1
         WHERE project_id = OLD.project_id AND issuer_id = OLD.issuer_id
           AND day = to_char(OLD.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD');
      END IF;
      IF TG_OP <> 'DELETE' AND NEW.not_after IS NOT NULL AND NEW.status <> 'revoked' THEN
        INSERT INTO certificate_expiry_counts (project_id, issuer_id, day, n)
        VALUES (NEW.project_id, NEW.issuer_id,
                to_char(NEW.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 1)
        ON CONFLICT (project_id, issuer_id, day)
        DO UPDATE SET n = certificate_expiry_counts.n + 1;
      END IF;
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER certificates_expiry_count AFTER INSERT OR DELETE ON certificates"
    " FOR EACH ROW EXECUTE FUNCTION certificate_expiry_count()",
    "CREATE TRIGGER certificates_expiry_count_update"
    " AFTER UPDATE OF project_id, issuer_id, not_after, status ON certificates"
    f" FOR EACH ROW WHEN {CHANGED.replace('IS NOT', 'IS DISTINCT FROM')}"
    " EXECUTE FUNCTION certificate_expiry_count()",
]
PG_DROP = [
    "DROP TRIGGER IF EXISTS certificates_expiry_count_update ON certificates",
    "DROP TRIGGER IF EXISTS certificates_expiry_count ON certificates",
    "DROP FUNCTION IF EXISTS certificate_expiry_count()",
    "DROP INDEX IF EXISTS ix_certificates_project_common_name_prefix",
    "DROP INDEX IF EXISTS ix_certificates_names_trgm",
    "DROP FUNCTION IF EXISTS certificate_names_text(json)",
]

_SQLITE_DAY = "substr({row}.not_after, 1, 10)"  # stored as 'YYYY-MM-DD HH:MM:SS...' in UTC
_SQLITE_ADD = (
    "INSERT INTO certificate_expiry_counts (project_id, issuer_id, day, n)"
    f" VALUES (NEW.project_id, NEW.issuer_id, {_SQLITE_DAY.format(row='NEW')}, 1)"
    " ON CONFLICT (project_id, issuer_id, day) DO UPDATE SET n = n + 1;"
)
_SQLITE_SUB = (
    "UPDATE certificate_expiry_counts SET n = n - 1"
    " WHERE project_id = OLD.project_id AND issuer_id = OLD.issuer_id"
    f" AND day = {_SQLITE_DAY.format(row='OLD')};"
)
SQLITE_TRIGGERS = {
    "certificates_expiry_count_insert": "AFTER INSERT ON certificates WHEN "
    + COUNTED.format(row="NEW")
    + f" BEGIN {_SQLITE_ADD} END",
    "certificates_expiry_count_delete": "AFTER DELETE ON certificates WHEN "
    + COUNTED.format(row="OLD")
    + f" BEGIN {_SQLITE_SUB} END",
    "certificates_expiry_count_update_old": "AFTER UPDATE OF project_id, issuer_id,"
    f" not_after, status ON certificates WHEN {COUNTED.format(row='OLD')} AND {CHANGED}"
    f" BEGIN {_SQLITE_SUB} END",
    "certificates_expiry_count_update_new": "AFTER UPDATE OF project_id, issuer_id,"
    f" not_after, status ON certificates WHEN {COUNTED.format(row='NEW')} AND {CHANGED}"
    f" BEGIN {_SQLITE_ADD} END",
}

# SQLite search: an FTS5 trigram table of the names joined by a newline. Its rowid comes
# from certificate_search_rows (an INTEGER PRIMARY KEY, which VACUUM keeps), one row per
# certificate id; triggers keep both in step with certificates.
_NAMES_OF = "(SELECT group_concat(value, char(10)) FROM json_each({row}.names))"
_ROW_OF = "(SELECT rowid FROM certificate_search_rows WHERE certificate_id = {row}.id)"
SQLITE_SEARCH = [
    "CREATE TABLE certificate_search_rows (rowid INTEGER PRIMARY KEY,"
    " certificate_id VARCHAR(32) NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE certificate_names_fts USING fts5(names,"
    " tokenize='trigram case_sensitive 1')",
    "INSERT INTO certificate_search_rows (certificate_id) SELECT id FROM certificates",
    "INSERT INTO certificate_names_fts (rowid, names) SELECT r.rowid, "
    + _NAMES_OF.format(row="c")
    + " FROM certificate_search_rows r JOIN certificates c ON c.id = r.certificate_id",
    "CREATE TRIGGER certificates_search_insert AFTER INSERT ON certificates BEGIN"
    " INSERT INTO certificate_search_rows (certificate_id) VALUES (NEW.id);"
    " INSERT INTO certificate_names_fts (rowid, names) VALUES ("
    + _ROW_OF.format(row="NEW")
    + ", "
    + _NAMES_OF.format(row="NEW")
    + "); END",
    "CREATE TRIGGER certificates_search_delete AFTER DELETE ON certificates BEGIN"
    " DELETE FROM certificate_names_fts WHERE rowid = "
    + _ROW_OF.format(row="OLD")
    + "; DELETE FROM certificate_search_rows WHERE certificate_id = OLD.id; END",
    "CREATE TRIGGER certificates_search_update AFTER UPDATE OF names ON certificates BEGIN"
    " UPDATE certificate_names_fts SET names = "
    + _NAMES_OF.format(row="NEW")
    + " WHERE rowid = "
    + _ROW_OF.format(row="NEW")
    + "; END",
]
SQLITE_SEARCH_DROP = [
    "DROP TRIGGER IF EXISTS certificates_search_update",
    "DROP TRIGGER IF EXISTS certificates_search_delete",
    "DROP TRIGGER IF EXISTS certificates_search_insert",
    "DROP TABLE IF EXISTS certificate_names_fts",
    "DROP TABLE IF EXISTS certificate_search_rows",
]

BACKFILL_DAY = {
    "postgresql": "to_char(not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "sqlite": "substr(not_after, 1, 10)",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "certificate_expiry_counts",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("issuer_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "issuer_id", "day", name=op.f("pk_certificate_expiry_counts")
        ),
    )
    day = BACKFILL_DAY[dialect]
    op.execute(
        "INSERT INTO certificate_expiry_counts (project_id, issuer_id, day, n)"
        f" SELECT project_id, issuer_id, {day}, count(*) FROM certificates"
        " WHERE not_after IS NOT NULL AND status <> 'revoked'"
        f" GROUP BY project_id, issuer_id, {day}"
    )
    if dialect == "postgresql":
        for statement in PG_FUNCTIONS:
            op.execute(statement)
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        for statement in SQLITE_SEARCH:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DROP:
            op.execute(statement)
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in SQLITE_SEARCH_DROP:
            op.execute(statement)
    op.drop_table("certificate_expiry_counts")
