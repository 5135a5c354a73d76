"""Users of the web UI: set a password."""

from __future__ import annotations

import sys

import typer

from certautopilot.auth import service as auth
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.errors import InvalidInput

app = typer.Typer(help="Web UI users.", no_args_is_help=True)


@app.command("set-password")
def set_password(
    email: str = typer.Option(..., help="The user's email; the user is created if missing."),
) -> None:
    """Set a user's web sign-in password, read from stdin (piped) or a hidden prompt."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = Settings.from_env()
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = auth.ensure_user(session, email=email)
            auth.set_password(user, password)
            address = user.email
    except InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(f"password set for {address}")
