"""``certautopilot backup DIR`` and ``certautopilot restore DIR`` (see ``ops.backup``)."""

from __future__ import annotations

from pathlib import Path

import typer

from certautopilot.config import Settings
from certautopilot.errors import CertAutoPilotError


def backup(
    directory: Path = typer.Argument(..., help="A new or empty directory for the backup."),
) -> None:
    """Write a consistent snapshot of the database and a manifest (the service may run).

    SQLite: the online backup API; PostgreSQL: pg_dump. The KEK is not in the backup:
    keep the key file or CERTAUTOPILOT_KEK apart from it.
    """
    settings = Settings.from_env()
    try:
        from certautopilot.crypto.kek import load_kek
        from certautopilot.ops import backup as snapshots  # alembic: loaded only when used

        manifest = snapshots.backup(settings, load_kek(settings), directory)
    except CertAutoPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    counts = ", ".join(f"{n} {what}" for what, n in manifest.counts.items())
    typer.echo(f"backed up {counts} into {directory}")
    typer.echo(f"warning: {manifest.warning}", err=True)


def restore(
    directory: Path = typer.Argument(..., help="A directory written by certautopilot backup."),
) -> None:
    """Restore a backup into an empty data directory or database, then check the KEK.

    Put the backed-up instance's KEK in place first (kek.key in the data directory, or
    CERTAUTOPILOT_KEK). Run the workers under the backed-up executor ids
    (CERTAUTOPILOT_EXECUTOR_ID) and they resume the workflows that were waiting.
    """
    from certautopilot.db.migrate import upgrade

    settings = Settings.from_env()
    try:
        from certautopilot.crypto.kek import load_kek
        from certautopilot.ops import backup as snapshots

        manifest = snapshots.restore(settings, directory)
        upgrade(settings)  # a backup of an older release: its schema moves to this one's
        checked = snapshots.check_kek(settings, load_kek(settings))
    except CertAutoPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"restored the backup of {manifest.created_at} ({manifest.counts['certificates']}"
        f" certificates); the KEK unwraps all {checked} secrets"
    )
