"""The tamper-evident audit trail: one hash chain per project, signed checkpoints, verify.

Every event of a chain (a project's; ``""`` for events of no project) carries ``seq`` (1, 2,
... without gaps), ``prev_hash`` (the hash of the event before; 64 zeros for the first) and
``hash`` = SHA-256 over the canonical encoding (sorted-key compact JSON) of the event's
fields, its ``seq`` and ``prev_hash``. A writer takes the chain's head row with an UPDATE
in the transaction that inserts the event: on PostgreSQL the row lock serializes the
project's writers until commit, on SQLite the UPDATE takes the database write lock
(``db/sqlite_writes.py``); the unique (project_id, seq) is the backstop.

Why the events wait for the commit: the head is one row every writer of a project locks. Were
it locked when an event is recorded, a transaction holding it could go on to wait for a
certificate row another transaction holds while that one waits for the head (a revocation
and a renewal finishing at once did: PostgreSQL broke the deadlock with a 503). So
:func:`append` only queues the event on the session; just before the commit every other
change is flushed, and only then is the head locked and the queued events inserted. The
head is always a transaction's last lock, and its holder waits for nothing but the commit.
An event is therefore not in the database, nor has its seq, until its transaction commits;
a rollback (or a session closed without commit) drops it with everything else.

Every ``audit_checkpoint_every`` events (and on demand, :func:`checkpoint`) an HMAC-SHA256
over (chain, seq, hash) is stored in ``audit_checkpoints``. Its key is random, kept
envelope-encrypted under the KEK (``crypto/service.py``): who can edit the database but has
no KEK cannot recompute the chain from an edited event on and sign it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from certautopilot.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from certautopilot.clock import as_utc
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.models import StoredSecret

GENESIS = "0" * 64
KEY_OWNER = "audit_checkpoints"
KEY_PURPOSE = "checkpoint_hmac"
#: session.info keys the app and the worker set (``install``).
INFO_KEK = "audit_kek"
INFO_EVERY = "audit_checkpoint_every"
INFO_PENDING = "audit_pending"
INFO_FORWARD = "audit_forwarder"
#: Events recorded in the session's transaction, chained at its commit.
INFO_QUEUED = "audit_queued"


def chain_of(project_id: str | None) -> str:
    return project_id or ""


def canonical(
    *,
    seq: int,
    prev_hash: str,
    at: datetime,
    project_id: str | None,
    actor: str,
    type: str,
    subject_type: str,
    subject_id: str,
    detail: dict[str, Any],
) -> bytes:
    fields = {
        "actor": actor,
        "at": as_utc(at).isoformat(timespec="microseconds"),
        "detail": detail,
        "prev_hash": prev_hash,
        "project_id": project_id,
        "seq": seq,
        "subject_id": subject_id,
        "subject_type": subject_type,
        "type": str(type),
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hash_of(event: AuditEvent, *, seq: int | None = None) -> str:
    """The hash ``event`` should carry (at ``seq``, default its own)."""
    data = canonical(
        seq=event.seq if seq is None else seq,
        prev_hash=event.prev_hash,
        at=event.at,
        project_id=event.project_id,
        actor=event.actor,
        type=event.type,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        detail=event.detail,
    )
    return hashlib.sha256(data).hexdigest()


def _insert_head(session: Session, chain: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(AuditChainHead)
        .values(chain=chain, seq=0, hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["chain"])
    )


def _advance(session: Session, chain: str) -> tuple[int, str]:
    """Locks the chain's head and moves it one on: (the new seq, the previous hash)."""
    stmt = (
        update(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .values(seq=AuditChainHead.seq + 1)
        .returning(AuditChainHead.seq, AuditChainHead.hash)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        _insert_head(session, chain)
        row = session.execute(stmt).one()
    return int(row[0]), str(row[1])


def append(session: Session, event: AuditEvent) -> None:
    """Queues ``event`` for its chain: it gets its place (seq, prev_hash, hash) and is
    inserted when the session commits (see the module's docstring for why)."""
    event.at = as_utc(event.at)
    # What the JSON column gives back, so the hash is computed over what is stored.
    event.detail = json.loads(json.dumps(event.detail or {}))
    session.info.setdefault(INFO_QUEUED, []).append(event)


def _chain(session: Session, event: AuditEvent) -> None:
    chain = chain_of(event.project_id)
    seq, prev = _advance(session, chain)
    event.seq, event.prev_hash = seq, prev
    event.hash = hash_of(event)
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .values(hash=event.hash)
        .execution_options(synchronize_session=False)
    )
    session.add(event)
    if session.info.get(INFO_FORWARD) is not None:
        session.info.setdefault(INFO_PENDING, []).append(event)
    kek = session.info.get(INFO_KEK)
    every = int(session.info.get(INFO_EVERY) or 0)
    if kek is not None and every and seq % every == 0:
        _sign(session, kek, chain, seq, event.hash)


@sa_event.listens_for(Session, "before_commit")
def _chain_queued(session: Session) -> None:
    queued: list[AuditEvent] = session.info.pop(INFO_QUEUED, [])
    if not queued:
        return
    session.flush()  # every other change first: the head is the transaction's last lock
    for event in queued:
        _chain(session, event)


@sa_event.listens_for(Session, "after_transaction_end")
def _drop_queued(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the session's own transaction (not a savepoint) ended
        session.info.pop(INFO_QUEUED, None)


def _key(session: Session, kek: KeyEncryptionKey, chain: str, *, create: bool) -> bytes | None:
    row = session.scalars(
        select(StoredSecret)
        .where(
            StoredSecret.owner_table == KEY_OWNER,
            StoredSecret.owner_id == chain,
            StoredSecret.purpose == KEY_PURPOSE,
        )
        .order_by(StoredSecret.created_at)
        .limit(1)
    ).first()
    if row is not None:
        return secrets.reveal_secret(
            session, kek, row.id, owner_table=KEY_OWNER, owner_id=chain, purpose=KEY_PURPOSE
        )
    if not create:
        return None
    key = os.urandom(32)
    secrets.store_secret(
        session, kek, owner_table=KEY_OWNER, owner_id=chain, purpose=KEY_PURPOSE, plaintext=key
    )
    return key


def _mac(key: bytes, chain: str, seq: int, hash_: str) -> str:
    return hmac.new(key, f"{chain}|{seq}|{hash_}".encode(), hashlib.sha256).hexdigest()


def _sign(session: Session, kek: KeyEncryptionKey, chain: str, seq: int, hash_: str) -> None:
    key = _key(session, kek, chain, create=True)
    assert key is not None
    session.add(
        AuditCheckpoint(chain=chain, seq=seq, hash=hash_, signature=_mac(key, chain, seq, hash_))
    )


def checkpoint(session: Session, kek: KeyEncryptionKey, project_id: str | None) -> int:
    """Signs the chain's head now (under its lock); the seq signed (0: an empty chain)."""
    chain = chain_of(project_id)
    stmt = (
        update(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .values(seq=AuditChainHead.seq)
        .returning(AuditChainHead.seq, AuditChainHead.hash)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).one_or_none()
    if row is None or int(row[0]) == 0:
        return 0
    seq, hash_ = int(row[0]), str(row[1])
    done = session.scalar(
        select(AuditCheckpoint.id).where(AuditCheckpoint.chain == chain, AuditCheckpoint.seq == seq)
    )
    if done is None:
        _sign(session, kek, chain, seq, hash_)
    return seq


class Problem(StrEnum):
    ALTERED = "altered"
    REMOVED = "removed"
    REORDERED = "reordered"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class Finding:
    chain: str
    seq: int
    problem: Problem
    why: str


@dataclass(frozen=True)
class Verified:
    chain: str
    events: int
    checkpoints: int
    finding: Finding | None


def chains(session: Session) -> list[str]:
    heads = set(session.scalars(select(AuditChainHead.chain)))
    heads |= {chain_of(p) for p in session.scalars(select(AuditEvent.project_id).distinct())}
    heads |= set(session.scalars(select(AuditCheckpoint.chain).distinct()))
    return sorted(heads)


def _rows(session: Session, chain: str) -> Iterator[AuditEvent]:
    where = AuditEvent.project_id.is_(None) if chain == "" else AuditEvent.project_id == chain
    stmt = select(AuditEvent).where(where).order_by(AuditEvent.seq, AuditEvent.id)
    yield from session.scalars(stmt.execution_options(yield_per=1000))


def _moved(session: Session, chain: str, row: AuditEvent) -> int | None:
    """The seq ``row``'s content was hashed at, when not its own (it was moved), or None."""
    where = AuditEvent.project_id.is_(None) if chain == "" else AuditEvent.project_id == chain
    top = (session.scalar(select(func.max(AuditEvent.seq)).where(where)) or 0) + 2
    for seq in range(1, top):
        if seq != row.seq and hash_of(row, seq=seq) == row.hash:
            return seq
    return None


def _first_break(
    session: Session, chain: str, keep: set[int]
) -> tuple[Finding | None, int, dict[int, str]]:
    expected, prev, prev_id = 1, GENESIS, 0
    hashes: dict[int, str] = {}
    for row in _rows(session, chain):
        seq = row.seq
        if seq is None or seq < expected:
            return Finding(chain, expected, Problem.REORDERED, "two events share a seq"), 0, {}
        if hash_of(row) != row.hash:
            moved = _moved(session, chain, row)
            if moved is not None:
                why = f"the event recorded as seq {moved} is at seq {seq}"
                if moved > seq:
                    why += " (an event before it was removed and the later ones renumbered?)"
                return Finding(chain, seq, Problem.REORDERED, why), 0, {}
            return (
                Finding(chain, seq, Problem.ALTERED, "its content does not match its hash"),
                0,
                {},
            )
        if seq > expected:
            span = str(expected) if seq == expected + 1 else f"{expected} to {seq - 1}"
            return Finding(chain, expected, Problem.REMOVED, f"event(s) {span} are missing"), 0, {}
        if row.prev_hash != prev:
            why = f"its prev_hash is not the hash of event {seq - 1}: that one was rewritten"
            return Finding(chain, max(seq - 1, 1), Problem.ALTERED, why), 0, {}
        if row.id < prev_id:
            why = f"it was written before event {seq - 1} (rows were swapped)"
            return Finding(chain, seq, Problem.REORDERED, why), 0, {}
        if seq in keep:
            hashes[seq] = row.hash
        prev, prev_id, expected = row.hash, row.id, expected + 1
    return None, expected - 1, hashes


def verify_chain(session: Session, chain: str, kek: KeyEncryptionKey | None) -> Verified:
    cps = list(
        session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.chain == chain)
            .order_by(AuditCheckpoint.seq)
        )
    )
    finding, last, hashes = _first_break(session, chain, {cp.seq for cp in cps})
    if finding is not None:
        return Verified(chain, last, len(cps), finding)
    key = _key(session, kek, chain, create=False) if kek is not None and cps else None
    if kek is not None and cps and key is None:
        why = "the checkpoints' signing key is gone"
        return Verified(chain, last, len(cps), Finding(chain, cps[0].seq, Problem.ALTERED, why))
    for cp in cps:
        if key is not None and not hmac.compare_digest(
            _mac(key, chain, cp.seq, cp.hash), cp.signature
        ):
            why = f"checkpoint at seq {cp.seq} has a bad signature"
            return Verified(chain, last, len(cps), Finding(chain, cp.seq, Problem.ALTERED, why))
        if cp.seq > last:
            why = f"events {last + 1} to {cp.seq} (signed in a checkpoint) are gone"
            return Verified(chain, last, len(cps), Finding(chain, last + 1, Problem.TRUNCATED, why))
        if hashes[cp.seq] != cp.hash:
            why = f"the chain was rewritten at or before seq {cp.seq} (its checkpoint differs)"
            return Verified(chain, last, len(cps), Finding(chain, cp.seq, Problem.ALTERED, why))
    head = session.scalar(select(AuditChainHead.seq).where(AuditChainHead.chain == chain)) or 0
    if head > last:
        why = f"the chain's head is at seq {head}: events {last + 1} to {head} are gone"
        return Verified(chain, last, len(cps), Finding(chain, last + 1, Problem.TRUNCATED, why))
    return Verified(chain, last, len(cps), None)


def verify(
    session: Session, kek: KeyEncryptionKey | None, project_id: str | None = None
) -> list[Verified]:
    """Every chain's verdict (or only ``project_id``'s)."""
    which = [chain_of(project_id)] if project_id is not None else chains(session)
    return [verify_chain(session, chain, kek) for chain in which]
