"""``Idempotency-Key`` on certificate requests: a retried request creates nothing new.

A client that lost the answer to ``POST .../certificates`` (a timeout, a dropped
connection) sends the same request again with the same key and gets the first answer back,
status code and body, instead of a second certificate and a second CA order. Keys belong to
a project and a caller (one user, whichever of their tokens), and live for
``Settings.idempotency_key_ttl`` (24 h by default). Only an accepted request (202) is
remembered: a refused one (422, 409, 429, ...) created nothing, so sending it again with
the same key is decided afresh.

Concurrent requests with one key: the row is inserted in the same transaction as the
certificate, under a unique constraint on (project, caller, key). On PostgreSQL a second
insert waits for the first transaction and then fails; on SQLite writers are serialized
(``db/sqlite_writes``) and the second one sees the first's row. The loser rolls its whole
transaction back (its certificate and its queued issuance with it) and answers the
winner's stored response. These functions never commit; ``workflows.commands`` does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from certautopilot.certificates.models import IdempotencyKey
from certautopilot.certificates.schemas import CertificateIn
from certautopilot.errors import InvalidInput

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
KEY_RULE = f"must be 1 to {MAX_LENGTH} printable ASCII characters (a UUID is a good key)"


@dataclass(frozen=True)
class Answer:
    """What the API sends back: the status code and the JSON body; ``replayed`` when it
    is a stored first answer."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def check_key(raw: str | None) -> str | None:
    """The header's value, or None when it was not sent; 422 naming the header when it is
    empty, too long or not printable ASCII (no control characters, no non-ASCII)."""
    if raw is None:
        return None
    if len(raw) > MAX_LENGTH or not _PRINTABLE.fullmatch(raw) or not raw.strip():
        raise InvalidInput.field(HEADER, KEY_RULE)
    return raw


def fingerprint(body: CertificateIn) -> str:
    """A digest of the request as parsed, so that key order or spacing do not count."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find(
    session: Session, *, project_id: str, user_id: str, key: str, now: datetime
) -> IdempotencyKey | None:
    """The stored answer for this key, unless it has expired."""
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.project_id == project_id,
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at > now,
        )
    )


def replay(row: IdempotencyKey, digest: str) -> Answer:
    """The first answer again; 422 naming the header when this request's body differs."""
    if row.fingerprint != digest:
        raise InvalidInput.field(
            HEADER,
            "was sent before with a different request body; use a new key for a new request",
        )
    return Answer(row.status_code, row.response, replayed=True)


def remember(
    session: Session,
    *,
    project_id: str,
    user_id: str,
    key: str,
    digest: str,
    answer: Answer,
    now: datetime,
    ttl: timedelta,
) -> None:
    """Stores the answer in the caller's transaction, dropping the project's expired keys
    first (an expired row of this very key included). Raises ``IntegrityError`` at the
    flush when a concurrent request with the same key got there first."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.project_id == project_id, IdempotencyKey.expires_at <= now
        )
    )
    session.add(
        IdempotencyKey(
            project_id=project_id,
            user_id=user_id,
            key=key,
            fingerprint=digest,
            status_code=answer.status_code,
            response=answer.body,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()
