"""Ports of the crypto domain: a key-encryption-key backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data-encryption keys. ``key_id`` names the active key.

    ``unwrap`` takes the ``kek_id`` recorded with the secret, so a backend may hold older
    keys during a rotation. Failures raise :class:`certautopilot.errors.CryptoError`.

    The contract every backend keeps (checked for the file and environment backends and
    the in-memory twin ``kek/memory.py`` by tests/conformance/test_kek.py):

    * ``unwrap(key_id, wrap(dek, aad), aad) == dek``; each ``wrap`` is randomized.
    * Another ``aad``, an unknown ``kek_id``, or altered, truncated or empty bytes raise
      ``CryptoError`` (never another exception type).
    * ``key_id`` is stable: the same keys opened again (a restart) give the same id.
    * After a rotation the new key is active (a new ``key_id``) and every older id still
      unwraps what it wrapped.
    * No key material appears in a ``repr`` or an error message.
    """

    @property
    def key_id(self) -> str: ...

    def wrap(self, dek: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes: ...
