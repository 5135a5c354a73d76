from __future__ import annotations

import typer

from certautopilot.auth import service as auth
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction

app = typer.Typer(help="API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    email: str = typer.Option(..., help="The user's email; the user is created if missing."),
    instance_admin: bool = typer.Option(
        False, "--instance-admin", help="Make the user an instance admin."
    ),
    name: str = typer.Option("", help="A label for the token."),
) -> None:
    """Print one new API token, alone, on stdout."""
    settings = Settings.from_env()
    upgrade(settings)
    engine = make_engine(settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = auth.ensure_user(session, email=email, instance_admin=instance_admin)
            token = auth.create_token(session, user=user, name=name)
    finally:
        engine.dispose()
    typer.echo(token)
