"""Envelope encryption of secrets: a fresh DEK per secret, AES-256-GCM, AAD bound to owner+purpose.

Services take a session and never commit; the caller owns the transaction.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.base import new_id
from certautopilot.errors import CryptoError, NotFound

NONCE_BYTES = 12


def _aad(owner_table: str, owner_id: str, purpose: str, secret_id: str) -> bytes:
    return f"{owner_table}:{owner_id}:{purpose}:{secret_id}".encode()


def store_secret(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    owner_table: str,
    owner_id: str,
    purpose: str,
    plaintext: bytes,
) -> StoredSecret:
    secret_id = new_id()
    aad = _aad(owner_table, owner_id, purpose, secret_id)
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    row = StoredSecret(
        id=secret_id,
        owner_table=owner_table,
        owner_id=owner_id,
        purpose=purpose,
        kek_id=kek.key_id,
        wrapped_dek=kek.wrap(dek, aad),
        ciphertext=nonce + AESGCM(dek).encrypt(nonce, plaintext, aad),
    )
    session.add(row)
    return row


def reveal_secret(
    session: Session,
    kek: KeyEncryptionKey,
    secret_id: str,
    *,
    owner_table: str,
    owner_id: str,
    purpose: str,
) -> bytes:
    row = session.get(StoredSecret, secret_id)
    if row is None:
        raise NotFound(f"secret {secret_id} does not exist")
    if (row.owner_table, row.owner_id, row.purpose) != (owner_table, owner_id, purpose):
        raise CryptoError("a secret was asked for by the wrong owner or purpose")
    aad = _aad(owner_table, owner_id, purpose, row.id)
    dek = kek.unwrap(row.kek_id, row.wrapped_dek, aad)
    try:
        return AESGCM(dek).decrypt(row.ciphertext[:NONCE_BYTES], row.ciphertext[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise CryptoError(f"secret {secret_id} failed to decrypt: tampered data") from exc


def delete_secret(
    session: Session, secret_id: str, *, owner_table: str, owner_id: str, purpose: str
) -> None:
    """Removes a secret (its wrapped DEK and ciphertext) of the owner that asks."""
    row = session.get(StoredSecret, secret_id)
    if row is None:
        return
    if (row.owner_table, row.owner_id, row.purpose) != (owner_table, owner_id, purpose):
        raise CryptoError("a secret was removed by the wrong owner or purpose")
    session.delete(row)


def left_to_rewrap(session: Session, new: KeyEncryptionKey) -> int:
    """How many data keys are not yet wrapped by ``new``'s active key."""
    return (
        session.scalar(
            select(func.count()).select_from(StoredSecret).where(StoredSecret.kek_id != new.key_id)
        )
        or 0
    )


def rewrap_batch(
    session: Session, old: KeyEncryptionKey, new: KeyEncryptionKey, *, limit: int
) -> int:
    """Rewraps up to ``limit`` data keys not yet under ``new``; how many it did.

    Why batches: a move of a million secrets to a KMS takes a long time and must survive a
    crash. Each batch is its own transaction (the caller commits), and which rows are left
    is read from ``kek_id`` itself, so running the move again resumes where it stopped.
    On PostgreSQL the rows are locked and ones another mover holds are skipped.
    """
    rows = session.scalars(
        select(StoredSecret)
        .where(StoredSecret.kek_id != new.key_id)
        .order_by(StoredSecret.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        aad = _aad(row.owner_table, row.owner_id, row.purpose, row.id)
        try:
            dek = old.unwrap(row.kek_id, row.wrapped_dek, aad)
        except CryptoError as exc:
            raise CryptoError(
                f"cannot unwrap secret {row.id} (wrapped by key {row.kek_id}): {exc}"
            ) from exc
        row.wrapped_dek = new.wrap(dek, aad)
        row.kek_id = new.key_id
    return len(rows)


def check_unwraps(session: Session, kek: KeyEncryptionKey) -> int:
    """Unwraps every secret's data key (no secret is decrypted): how many. A CryptoError
    names the first secret ``kek`` cannot open (a restore with the wrong key file)."""
    count = 0
    for row in session.scalars(select(StoredSecret)):
        aad = _aad(row.owner_table, row.owner_id, row.purpose, row.id)
        try:
            kek.unwrap(row.kek_id, row.wrapped_dek, aad)
        except CryptoError as exc:
            raise CryptoError(
                f"the KEK cannot unwrap secret {row.id} (wrapped by key {row.kek_id}): use the"
                " key file or CERTAUTOPILOT_KEK of the instance that was backed up"
            ) from exc
        count += 1
    return count
