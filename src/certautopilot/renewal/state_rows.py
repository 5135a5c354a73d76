"""The one way to get a certificate's ``renewal_states`` row, creating it when missing.

The row is created by an upsert (``INSERT ... ON CONFLICT DO NOTHING``) and read back, so
two transactions that both find it missing (a renewal tick, an ARI check, the API setting
a profile) do not fail on its primary key: the second one gets the first one's row.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from certautopilot.clock import utcnow
from certautopilot.renewal.models import RenewalState


def ensure_state(session: Session, cert_id: str) -> RenewalState:
    state = session.get(RenewalState, cert_id)
    if state is not None:
        return state
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(RenewalState)
        .values(certificate_id=cert_id, attempts=0, warnings_sent=[], updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=[RenewalState.certificate_id])
    )
    state = session.get(RenewalState, cert_id)
    assert state is not None
    return state
