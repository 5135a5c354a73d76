"""``certautopilot token create``: an API token for a user, on this instance's database."""

from __future__ import annotations

import typer

from certautopilot.cli.local_db import local_session
from certautopilot.config import Settings

app = typer.Typer(help="API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    email: str = typer.Option(..., help="The user's email; the user is created if missing."),
    instance_admin: bool = typer.Option(
        False, "--instance-admin", help="Make the user an instance admin."
    ),
    name: str = typer.Option("", help="A label for the token."),
    expires_in_days: int | None = typer.Option(
        None,
        "--expires-in-days",
        min=1,
        max=3650,
        help="Days until it stops working (default: never, as a bootstrap token).",
    ),
) -> None:
    """Print one new API token, alone, on stdout."""
    from certautopilot.auth import service as auth
    from certautopilot.auth import tokens

    with local_session(Settings.from_env()) as session:
        user = auth.ensure_user(session, email=email, instance_admin=instance_admin)
        token = tokens.create_token(session, user=user, name=name, expires_in_days=expires_in_days)
    typer.echo(token)
