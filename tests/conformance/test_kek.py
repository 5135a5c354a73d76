"""The ``KeyEncryptionKey`` contract, run against the in-memory twin, the key file and the
environment backend (crypto/interfaces.py states it).

A wrapped data key comes back only with the same ``kek_id`` and ``aad``; anything else
(another aad, an unknown id, altered or truncated bytes) is a ``CryptoError``; after a
rotation the new key wraps and every older id still unwraps; ``key_id`` is stable across
restarts; no key shows in a ``repr`` or an error.
"""

from __future__ import annotations

import os

import pytest

from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import CryptoError
from tests.conformance.conftest import KekBackend

AAD = b"stored_secrets|secret-1|notification_channels|chan-1|webhook_secret"


def _dek() -> bytes:
    return os.urandom(32)


def _no_key(backend: KekBackend, *texts: object) -> None:
    for text in texts:
        for key in backend.key_texts():
            assert key not in str(text), f"{backend.name}: a key shows in {str(text)[:200]!r}"


def test_is_a_key_encryption_key_with_a_stable_id(kek_backend: KekBackend) -> None:
    kek = kek_backend.open()
    assert isinstance(kek, KeyEncryptionKey)
    assert isinstance(kek.key_id, str) and kek.key_id
    assert kek.key_id == kek.key_id
    assert kek_backend.reopen().key_id == kek.key_id, "a restart keeps the active key"
    _no_key(kek_backend, repr(kek), str(kek))


def test_wrap_then_unwrap_gives_the_data_key_back(kek_backend: KekBackend) -> None:
    kek, dek = kek_backend.open(), _dek()
    wrapped = kek.wrap(dek, AAD)
    assert dek not in wrapped
    assert kek.wrap(dek, AAD) != wrapped, "each wrap uses a fresh nonce"
    assert kek.unwrap(kek.key_id, wrapped, AAD) == dek
    assert kek_backend.reopen().unwrap(kek.key_id, wrapped, AAD) == dek


def test_another_aad_does_not_unwrap(kek_backend: KekBackend) -> None:
    """The aad binds a data key to its row: moving it to another owner must fail."""
    kek, dek = kek_backend.open(), _dek()
    wrapped = kek.wrap(dek, AAD)
    with pytest.raises(CryptoError) as caught:
        kek.unwrap(kek.key_id, wrapped, AAD.replace(b"chan-1", b"chan-2"))
    _no_key(kek_backend, caught.value, repr(caught.value))


@pytest.mark.parametrize(
    "damage",
    [
        lambda w: w[:-1] + bytes([w[-1] ^ 1]),
        lambda w: bytes([w[0] ^ 1]) + w[1:],
        lambda w: w[:20],
        lambda w: w[:5],
        lambda w: b"",
    ],
    ids=["tag-bit", "nonce-bit", "truncated", "shorter-than-a-nonce", "empty"],
)
def test_altered_bytes_do_not_unwrap(kek_backend: KekBackend, damage: object) -> None:
    kek = kek_backend.open()
    wrapped = kek.wrap(_dek(), AAD)
    with pytest.raises(CryptoError):
        kek.unwrap(kek.key_id, damage(wrapped), AAD)  # type: ignore[operator]


def test_an_unknown_kek_id_is_a_crypto_error(kek_backend: KekBackend) -> None:
    kek = kek_backend.open()
    wrapped = kek.wrap(_dek(), AAD)
    with pytest.raises(CryptoError) as caught:
        kek.unwrap("0123456789abcdef", wrapped, AAD)
    _no_key(kek_backend, caught.value)


def test_rotation_wraps_with_the_new_key_and_still_unwraps_older_ones(
    kek_backend: KekBackend,
) -> None:
    kek, first = kek_backend.open(), _dek()
    old_id, old_wrapped = kek.key_id, kek.wrap(first, AAD)

    rotated = kek_backend.rotate()
    assert rotated.key_id != old_id
    assert rotated.unwrap(old_id, old_wrapped, AAD) == first
    second = _dek()
    new_wrapped = rotated.wrap(second, AAD)
    assert rotated.unwrap(rotated.key_id, new_wrapped, AAD) == second
    with pytest.raises(CryptoError):
        rotated.unwrap(old_id, new_wrapped, AAD)  # wrapped under the new key, not the old

    twice = kek_backend.rotate()
    assert twice.unwrap(old_id, old_wrapped, AAD) == first
    assert twice.unwrap(rotated.key_id, new_wrapped, AAD) == second
    assert kek_backend.reopen().key_id == twice.key_id
    _no_key(kek_backend, repr(twice))
