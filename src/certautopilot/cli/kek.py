from __future__ import annotations

import base64

import typer

from certautopilot.config import Settings
from certautopilot.crypto import service as secrets
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.kek.file import FileKEK, read_keys, write_keys
from certautopilot.crypto.kek.keyring import Keyring, decode_key, generate_key
from certautopilot.db.session import make_engine, make_sessionmaker, transaction

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
) -> None:
    """Rewrap every data key under a new KEK; no ciphertext changes, nothing is lost.

    With the key file, the new key goes first in the file and every DEK is rewrapped in
    one transaction. The old keys stay in the file (unwrap only) so that a process still
    running with them loses nothing; 'kek prune' drops the ones no secret uses any more.
    """
    settings = Settings.from_env()
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    try:
        if settings.kek_b64:
            if not new_kek:
                raise typer.BadParameter("give --new-kek when CERTAUTOPILOT_KEK is set")
            old: Keyring = EnvKEK(settings.kek_b64, settings.kek_previous_b64)
            new: Keyring = Keyring([decode_key(new_kek, source="--new-kek")])
            with transaction(sessions) as session:
                count = secrets.rewrap_all(session, old, new)
            typer.echo(f"rewrapped {count} data keys; now set CERTAUTOPILOT_KEK to the new key")
            return
        file_kek = FileKEK(settings.data_dir)
        old_keys = read_keys(file_kek.path)
        fresh = generate_key()
        write_keys(file_kek.path, [fresh, *old_keys])
        with transaction(sessions) as session:
            count = secrets.rewrap_all(session, Keyring(old_keys), Keyring([fresh]))
        typer.echo(
            f"rewrapped {count} data keys under a new KEK in {file_kek.path}; restart "
            "running services, then run 'certautopilot kek prune'"
        )
    finally:
        engine.dispose()


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
