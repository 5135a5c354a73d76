"""``certautopilot audit verify|checkpoint``: the audit hash chains, on the database;
``audit export``: a project's events from a running service (its HTTP API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from certautopilot.cli.remote import Remote, remote_command
from certautopilot.config import Settings
from certautopilot.errors import CertAutoPilotError, NotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# The database layers (SQLAlchemy models, Alembic) load inside the commands, not when the
# CLI starts: every other command (``certs list`` ...) would pay for them.

app = typer.Typer(help="The tamper-evident audit trail (instance operators).", no_args_is_help=True)


def _project_id(session: Session, project: str) -> str:
    from sqlalchemy import or_, select

    from certautopilot.audit import chain
    from certautopilot.projects.models import Project

    found = session.scalar(
        select(Project.id).where(or_(Project.slug == project, Project.id == project))
    )
    if found is None and project in chain.chains(session):
        found = project  # a chain of a project since deleted: its trail is still checked
    if found is None:
        raise NotFound(f"no project {project!r}")
    return found


@app.command("verify")
def verify(
    project: str = typer.Option("", help="Only this project (slug or id); default every chain."),
) -> None:
    """Checks every event's hash, link and seq and the signed checkpoints: prints OK, or
    the first bad event (altered, removed, reordered or truncated) and exits 1."""
    from certautopilot.audit import chain
    from certautopilot.crypto.kek import load_kek
    from certautopilot.db.migrate import upgrade
    from certautopilot.db.session import make_engine, make_sessionmaker, transaction

    settings = Settings.from_env()
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            project_id = _project_id(session, project) if project else None
            results = chain.verify(session, load_kek(settings), project_id)
    except CertAutoPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    bad = False
    for result in results:
        name = result.chain or "(no project)"
        if result.finding is None:
            typer.echo(f"OK {name}: {result.events} events, {result.checkpoints} checkpoints")
        else:
            bad = True
            f = result.finding
            typer.echo(f"FAILED {name}: seq {f.seq} {f.problem}: {f.why}")
    if bad:
        raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint(
    project: str = typer.Option("", help="Only this project (slug or id); default every chain."),
) -> None:
    """Signs each chain's head now (a checkpoint) and prints the seq signed."""
    from certautopilot.audit import chain
    from certautopilot.crypto.kek import load_kek
    from certautopilot.db.migrate import upgrade
    from certautopilot.db.session import make_engine, make_sessionmaker, transaction

    settings = Settings.from_env()
    upgrade(settings)
    engine = make_engine(settings)
    kek = load_kek(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            which = [_project_id(session, project)] if project else chain.chains(session)
            signed = [(c, chain.checkpoint(session, kek, c or None)) for c in which]
    except CertAutoPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    for name, seq in signed:
        typer.echo(f"{name or '(no project)'}: checkpoint at seq {seq}")


@remote_command(app, "export", prints=False)
def export(
    remote: Remote,
    after: Annotated[
        int, typer.Option("--after", min=0, metavar="SEQ", help="Only events after this seq.")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Events at most.")] = 1000,
) -> None:
    """A project's events from a running service, one JSON object a line in chain order
    (seq, prev_hash, hash): poll with --after set to the last seq you have (admins)."""
    with remote.client() as client:
        path = remote.path("/projects/{project}/audit")
        answer = client.request(
            "GET", path, params={"after": after, "limit": limit, "format": "jsonl"}
        )
    typer.echo(answer.text, nl=False)
