from __future__ import annotations

import base64
import sys

import typer
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.config import Settings
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.kek import load_kek
from certautopilot.crypto.kek.chain import ChainedKEK
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.kek.file import FileKEK, read_keys, write_keys
from certautopilot.crypto.kek.keyring import Keyring, decode_key, generate_key
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.errors import CryptoError

app = typer.Typer(help="The key-encryption key (KEK).", no_args_is_help=True)


@app.command("generate")
def generate() -> None:
    """Print a new random KEK (base64) for CERTAUTOPILOT_KEK."""
    typer.echo(base64.b64encode(generate_key()).decode())


@app.command("rotate")
def rotate(
    new_kek: str = typer.Option(
        "", help="With CERTAUTOPILOT_KEK: the new base64 KEK (make one with 'kek generate')."
    ),
    batch_size: int = typer.Option(500, min=1, max=10_000, help="Data keys per transaction."),
) -> None:
    """Rewrap every data key under a new KEK; no ciphertext changes, nothing is lost.

    Moving to another backend: restart the services with the new one as
    CERTAUTOPILOT_KEK_BACKEND/_CONFIG and the old one as CERTAUTOPILOT_KEK_PREVIOUS_BACKEND/
    _CONFIG, then run this with the same settings. With the key file, the new key goes
    first in the file and the old ones stay (unwrap only) so that a process still running
    with them loses nothing; 'kek prune' drops the ones no secret uses any more. The work
    goes in batches, each its own transaction: run it again after a crash and it goes on
    where it stopped.
    """
    settings = Settings.from_env()
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    try:
        if settings.kek_previous_backend:
            chain = load_kek(settings)
            assert isinstance(chain, ChainedKEK)
            count = _move(sessions, chain, chain.active, batch_size)
            typer.echo(
                f"moved {count} data keys to the {settings.kek_backend or 'active'} backend "
                f"(key {chain.active.key_id}); no secret needs the previous backend any "
                "more: remove CERTAUTOPILOT_KEK_PREVIOUS_BACKEND and _CONFIG"
            )
            return
        if settings.kek_backend not in (None, "file", "env"):
            typer.echo(
                f"the {settings.kek_backend} backend rotates its key itself (old key "
                "versions still unwrap); to move to another backend, name this one in "
                "CERTAUTOPILOT_KEK_PREVIOUS_BACKEND/_CONFIG and the new one as active"
            )
            return
        if settings.kek_b64:
            if not new_kek:
                raise typer.BadParameter("give --new-kek when CERTAUTOPILOT_KEK is set")
            old: Keyring = EnvKEK(settings.kek_b64, settings.kek_previous_b64)
            new: Keyring = Keyring([decode_key(new_kek, source="--new-kek")])
            count = _move(sessions, old, new, batch_size)
            typer.echo(f"rewrapped {count} data keys; now set CERTAUTOPILOT_KEK to the new key")
            return
        file_kek = FileKEK(settings.data_dir)
        old_keys = read_keys(file_kek.path)
        fresh = generate_key()
        write_keys(file_kek.path, [fresh, *old_keys])
        count = _move(sessions, Keyring(old_keys), Keyring([fresh]), batch_size)
        typer.echo(
            f"rewrapped {count} data keys under a new KEK in {file_kek.path}; restart "
            "running services, then run 'certautopilot kek prune'"
        )
    except CryptoError as exc:
        typer.echo(f"error: {exc}; the data keys moved so far stay moved", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _move(
    sessions: sessionmaker[Session], old: KeyEncryptionKey, new: KeyEncryptionKey, batch: int
) -> int:
    """Every data key not under ``new``, ``batch`` per transaction, with a progress bar."""
    with transaction(sessions) as session:
        total = secrets.left_to_rewrap(session, new)
    moved = 0
    with typer.progressbar(length=total, label="rewrapping data keys", file=sys.stderr) as bar:
        while True:
            with transaction(sessions) as session:
                done = secrets.rewrap_batch(session, old, new, limit=batch)
            if not done:
                return moved
            moved += done
            bar.update(done)


@app.command("prune")
def prune() -> None:
    """Drop old keys from the key file that no stored secret is wrapped with any more."""
    from sqlalchemy import select

    from certautopilot.crypto.kek.keyring import kek_id_of
    from certautopilot.crypto.models import StoredSecret

    settings = Settings.from_env()
    file_kek = FileKEK(settings.data_dir)
    engine = make_engine(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            used = set(session.scalars(select(StoredSecret.kek_id).distinct()))
    finally:
        engine.dispose()
    keys = read_keys(file_kek.path)
    kept = [keys[0]] + [k for k in keys[1:] if kek_id_of(k) in used]
    write_keys(file_kek.path, kept)
    typer.echo(f"kept {len(kept)} key(s), dropped {len(keys) - len(kept)}")
