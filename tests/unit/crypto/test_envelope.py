"""Envelope encryption on a real SQLite database: DEK per secret, AAD binding, rewrap."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from certautopilot.config import Settings
from certautopilot.crypto import service as secrets
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.kek.file import FileKEK
from certautopilot.crypto.kek.keyring import Keyring, generate_key
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.base import Base
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.errors import ConfigError, CryptoError


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    settings = Settings.from_env({"CERTAUTOPILOT_DATA_DIR": str(tmp_path)})
    engine = make_engine(settings)
    Base.metadata.create_all(engine, tables=[StoredSecret.__table__])  # type: ignore[list-item]
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def _store(session: Session, kek: Keyring, plaintext: bytes = b"secret!") -> StoredSecret:
    row = secrets.store_secret(
        session, kek, owner_table="t", owner_id="o1", purpose="p", plaintext=plaintext
    )
    session.flush()
    return row


def test_round_trip_with_fresh_dek_each(session: Session) -> None:
    kek = Keyring([generate_key()])
    a, b = _store(session, kek), _store(session, kek)
    assert a.ciphertext != b.ciphertext and a.wrapped_dek != b.wrapped_dek
    assert b"secret!" not in a.ciphertext
    got = secrets.reveal_secret(session, kek, a.id, owner_table="t", owner_id="o1", purpose="p")
    assert got == b"secret!"


def test_wrong_owner_or_purpose_or_moved_ciphertext_fails(session: Session) -> None:
    kek = Keyring([generate_key()])
    a = _store(session, kek)
    with pytest.raises(CryptoError):
        secrets.reveal_secret(session, kek, a.id, owner_table="t", owner_id="o2", purpose="p")
    b = secrets.store_secret(
        session, kek, owner_table="t", owner_id="o2", purpose="p", plaintext=b"other"
    )
    session.flush()
    b.ciphertext, b.wrapped_dek = a.ciphertext, a.wrapped_dek  # a copied ciphertext
    with pytest.raises(CryptoError):
        secrets.reveal_secret(session, kek, b.id, owner_table="t", owner_id="o2", purpose="p")


def test_tampering_and_wrong_kek_fail(session: Session) -> None:
    kek = Keyring([generate_key()])
    a = _store(session, kek)
    with pytest.raises(CryptoError):
        secrets.reveal_secret(
            session, Keyring([generate_key()]), a.id, owner_table="t", owner_id="o1", purpose="p"
        )
    a.ciphertext = a.ciphertext[:-1] + bytes([a.ciphertext[-1] ^ 1])
    with pytest.raises(CryptoError):
        secrets.reveal_secret(session, kek, a.id, owner_table="t", owner_id="o1", purpose="p")


def test_rewrap_keeps_ciphertext_and_switches_kek(session: Session) -> None:
    old, new = Keyring([generate_key()]), Keyring([generate_key()])
    a = _store(session, old)
    ciphertext = a.ciphertext
    assert secrets.left_to_rewrap(session, new) == 1
    assert secrets.rewrap_batch(session, old, new, limit=10) == 1
    assert secrets.left_to_rewrap(session, new) == 0
    assert secrets.rewrap_batch(session, old, new, limit=10) == 0
    assert a.ciphertext == ciphertext and a.kek_id == new.key_id
    assert (
        secrets.reveal_secret(session, new, a.id, owner_table="t", owner_id="o1", purpose="p")
        == b"secret!"
    )
    with pytest.raises(CryptoError):
        secrets.reveal_secret(session, old, a.id, owner_table="t", owner_id="o1", purpose="p")


def test_file_kek_created_0600_and_env_kek_validated(tmp_path: Path) -> None:
    kek = FileKEK(tmp_path)
    assert (tmp_path / "kek.key").stat().st_mode & 0o777 == 0o600
    assert FileKEK(tmp_path).key_id == kek.key_id
    (tmp_path / "kek.key").chmod(0o644)
    with pytest.raises(ConfigError):
        FileKEK(tmp_path)
    with pytest.raises(ConfigError):
        EnvKEK("not base64!")
    with pytest.raises(ConfigError):
        EnvKEK(base64.b64encode(b"short").decode())
    assert EnvKEK(base64.b64encode(generate_key()).decode()).key_id
