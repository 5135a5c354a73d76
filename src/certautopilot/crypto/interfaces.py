"""Ports of the crypto domain: a key-encryption-key backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data-encryption keys. ``key_id`` names the active key.

    ``unwrap`` takes the ``kek_id`` recorded with the secret, so a backend may hold older
    keys during a rotation. Failures raise :class:`certautopilot.errors.CryptoError`.
    """

    @property
    def key_id(self) -> str: ...

    def wrap(self, dek: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes: ...
