"""Envelope encryption of secrets: a fresh DEK per secret, AES-256-GCM, AAD bound to owner+purpose.

Services take a session and never commit; the caller owns the transaction.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
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


def rewrap_all(session: Session, old: KeyEncryptionKey, new: KeyEncryptionKey) -> int:
    """Rewrap every DEK under ``new``; ciphertexts are untouched. Returns how many."""
    count = 0
    for row in session.scalars(select(StoredSecret).with_for_update()):
        aad = _aad(row.owner_table, row.owner_id, row.purpose, row.id)
        dek = old.unwrap(row.kek_id, row.wrapped_dek, aad)
        row.wrapped_dek = new.wrap(dek, aad)
        row.kek_id = new.key_id
        count += 1
    return count


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
