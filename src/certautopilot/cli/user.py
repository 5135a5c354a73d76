"""Users of the web UI: set a password, or print a one-time sign-in link."""

from __future__ import annotations

import sys

import typer

from certautopilot import links
from certautopilot.cli.local_db import local_session
from certautopilot.clock import utcnow
from certautopilot.config import Settings
from certautopilot.errors import InvalidInput

app = typer.Typer(help="Web UI users.", no_args_is_help=True)


@app.command("set-password")
def set_password(
    email: str = typer.Option(..., help="The user's email; the user is created if missing."),
    instance_admin: bool = typer.Option(
        False, help="Also make the user an instance admin (may create projects, see sessions)."
    ),
) -> None:
    """Set a user's web sign-in password, read from stdin (piped) or a hidden prompt.

    Every web session of the user ends: whoever was signed in signs in again."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    from certautopilot.auth import service as auth

    try:
        with local_session(Settings.from_env()) as session:
            user = auth.ensure_user(session, email=email, instance_admin=instance_admin)
            ended = auth.change_password(session, user=user, password=password, actor="cli")
            address = user.email
    except InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"password set for {address}; {ended} web session(s) ended")


@app.command("invite")
def invite(
    email: str = typer.Option(..., help="The user's email; the user is created if missing."),
    instance_admin: bool = typer.Option(
        False, help="Also make the user an instance admin (may create projects, see sessions)."
    ),
) -> None:
    """Print a one-time sign-in link (valid 7 days): whoever opens it chooses the user's
    password and is signed in. A new link replaces the user's unused ones."""
    from certautopilot.auth import invitations
    from certautopilot.auth import service as auth

    settings = Settings.from_env()
    try:
        with local_session(settings) as session:
            user = auth.ensure_user(session, email=email, instance_admin=instance_admin)
            token = invitations.create(session, user=user, actor="cli", now=utcnow())
    except InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(links.invitation(token, base=settings.public_url))
