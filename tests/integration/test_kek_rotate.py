"""Moving every data key to another KEK backend: ``certautopilot kek rotate`` in batches.

10,000 secrets are stored under the key file; the settings then name an environment key
as active and the key file as previous. A first move dies part-way (the new backend
fails in the middle of a batch); its finished batches stay, the broken one rolls back.
The CLI run afterwards moves only what is left, and every secret then opens with the new
key alone. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from certautopilot.cli.kek import _move
from certautopilot.config import Settings
from certautopilot.crypto import service as secrets
from certautopilot.crypto.kek import load_kek
from certautopilot.crypto.kek.chain import ChainedKEK
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.errors import CryptoError
from tests.conftest import backends, fresh_database

COUNT = 10_000
NEW_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(params=backends())
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    with fresh_database(request.param, tmp_path) as url:
        yield {"CERTAUTOPILOT_DATA_DIR": str(tmp_path / "data"), "CERTAUTOPILOT_DATABASE_URL": url}


class _DiesAfter:
    """The new backend, failing after ``n`` wraps: a mover that crashes mid-batch."""

    def __init__(self, kek: EnvKEK, n: int) -> None:
        self.kek, self.left = kek, n
        self.key_id = kek.key_id

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        self.left -= 1
        if self.left < 0:
            raise CryptoError("the new backend went away")
        return self.kek.wrap(dek, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        return self.kek.unwrap(kek_id, wrapped, aad)


def test_rotate_moves_ten_thousand_secrets_to_another_backend_and_resumes(
    env: dict[str, str],
) -> None:
    before = Settings.from_env(env)
    upgrade(before)
    engine = make_engine(before)
    sessions = make_sessionmaker(engine)
    old = load_kek(before)  # the key file, created in the data dir
    with transaction(sessions) as session:
        ids = [
            secrets.store_secret(
                session, old, owner_table="t", owner_id=f"o{i}", purpose="p", plaintext=b"%d" % i
            ).id
            for i in range(COUNT)
        ]

    moving = {
        **env,
        "CERTAUTOPILOT_KEK_BACKEND": "env",
        "CERTAUTOPILOT_KEK_CONFIG": f'{{"active_b64": "{NEW_KEY}"}}',
        "CERTAUTOPILOT_KEK_PREVIOUS_BACKEND": "file",
        "CERTAUTOPILOT_KEK_PREVIOUS_CONFIG": f'{{"data_dir": "{env["CERTAUTOPILOT_DATA_DIR"]}"}}',
    }
    chain = load_kek(Settings.from_env(moving))
    assert isinstance(chain, ChainedKEK) and isinstance(chain.active, EnvKEK)
    with pytest.raises(CryptoError, match="went away"):
        _move(sessions, chain, _DiesAfter(chain.active, 2_750), 1_000)
    with transaction(sessions) as session:
        assert secrets.left_to_rewrap(session, chain.active) == COUNT - 2_000
        # Meanwhile every secret opens, moved or not: services keep working.
        for i in (0, 1_999, 2_000, COUNT - 1):
            shown = secrets.reveal_secret(
                session, chain, ids[i], owner_table="t", owner_id=f"o{i}", purpose="p"
            )
            assert shown == b"%d" % i

    done = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "kek", "rotate", "--batch-size", "700"],
        env=moving,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"moved {COUNT - 2_000} data keys to the env backend" in done.stdout
    assert "remove CERTAUTOPILOT_KEK_PREVIOUS_BACKEND" in done.stdout
    assert NEW_KEY not in done.stdout + done.stderr

    new_only = EnvKEK(NEW_KEY)
    with transaction(sessions) as session:
        assert set(session.scalars(sa.select(StoredSecret.kek_id).distinct())) == {new_only.key_id}
        for i, secret_id in enumerate(ids):
            shown = secrets.reveal_secret(
                session, new_only, secret_id, owner_table="t", owner_id=f"o{i}", purpose="p"
            )
            assert shown == b"%d" % i
    again = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "kek", "rotate"],
        env=moving,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "moved 0 data keys" in again.stdout
    engine.dispose()


def test_rotate_says_which_secret_it_cannot_open(env: dict[str, str]) -> None:
    """A data key neither backend opens stops the move with its id; nothing else is lost."""
    settings = Settings.from_env(env)
    upgrade(settings)
    engine = make_engine(settings)
    stranger = EnvKEK(base64.b64encode(b"x" * 32).decode())
    with transaction(make_sessionmaker(engine)) as session:
        row = secrets.store_secret(
            session, stranger, owner_table="t", owner_id="o", purpose="p", plaintext=b"s"
        )
    engine.dispose()
    moving = {
        **env,
        "CERTAUTOPILOT_KEK_BACKEND": "env",
        "CERTAUTOPILOT_KEK_CONFIG": f'{{"active_b64": "{NEW_KEY}"}}',
        "CERTAUTOPILOT_KEK_PREVIOUS_BACKEND": "file",
        "CERTAUTOPILOT_KEK_PREVIOUS_CONFIG": f'{{"data_dir": "{env["CERTAUTOPILOT_DATA_DIR"]}"}}',
    }
    failed = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "kek", "rotate"],
        env=moving,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1
    assert f"cannot unwrap secret {row.id} (wrapped by key {row.kek_id})" in failed.stderr
    assert "the data keys moved so far stay moved" in failed.stderr
