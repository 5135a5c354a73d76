"""An in-memory keyring of AES-256 KEKs; the first key is active, the rest only unwrap."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from certautopilot.errors import ConfigError, CryptoError

KEY_BYTES = 32
NONCE_BYTES = 12


def kek_id_of(key: bytes) -> str:
    return hashlib.sha256(b"certautopilot-kek-id:" + key).hexdigest()[:16]


def decode_key(value: str, *, source: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{source} must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


def generate_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class Keyring:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("a KEK keyring needs at least one key")
        self._keys = {kek_id_of(k): k for k in keys}
        self._active = kek_id_of(keys[0])

    @property
    def key_id(self) -> str:
        return self._active

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._keys[self._active]).encrypt(nonce, dek, b"dek|" + aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        key = self._keys.get(kek_id)
        if key is None:
            raise CryptoError(f"no KEK with id {kek_id} is configured")
        if len(wrapped) < NONCE_BYTES:
            # AESGCM would raise ValueError for a short nonce: still "tampered data".
            raise CryptoError("a data key failed to unwrap: the wrapped value is truncated")
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], b"dek|" + aad)
        except InvalidTag as exc:
            raise CryptoError("a data key failed to unwrap: wrong KEK or tampered data") from exc
