"""Web sessions on this instance: list them, end one or all of a user's (on the database)."""

from __future__ import annotations

import json
from datetime import timedelta
from enum import StrEnum

import typer

from certautopilot.cli.local_db import local_session
from certautopilot.clock import as_utc, utcnow
from certautopilot.config import Settings
from certautopilot.errors import CertAutoPilotError

app = typer.Typer(help="Web UI sessions (instance operators).", no_args_is_help=True)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


@app.command("list")
def list_sessions(
    email: str = typer.Option("", help="Only this user's sessions."),
    output: Output = typer.Option(Output.TABLE, help="table or json."),
) -> None:
    """Live web sessions, most recently used first (never any token)."""
    from certautopilot.auth import service as auth
    from certautopilot.auth import sessions as web_sessions

    settings = Settings.from_env()
    idle = timedelta(minutes=settings.session_idle_minutes)
    try:
        with local_session(settings) as session:
            user_id = auth.user_by_email(session, email).id if email else None
            rows = web_sessions.active(session, now=utcnow(), idle=idle, user_id=user_id)
            items = [
                {
                    "id": row.id,
                    "email": address,
                    "created_at": as_utc(row.created_at).isoformat(),
                    "last_seen_at": as_utc(row.last_seen_at).isoformat(),
                    "expires_at": as_utc(row.expires_at).isoformat(),
                    "client": row.client,
                    "user_agent": row.user_agent,
                }
                for row, address in rows
            ]
    except CertAutoPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if output is Output.JSON:
        typer.echo(json.dumps(items, indent=2))
        return
    typer.echo(f"{'ID':<32}  {'EMAIL':<30}  {'LAST SEEN':<25}  CLIENT")
    for item in items:
        typer.echo(
            f"{item['id']:<32}  {item['email']:<30}  {item['last_seen_at'][:25]:<25}  "
            f"{item['client']}"
        )


@app.command("revoke")
def revoke(
    session_id: str = typer.Argument("", help="The session to end (from 'sessions list')."),
    email: str = typer.Option("", help="End every session of this user instead."),
) -> None:
    """End one session, or every session of a user, at once (audited as session.revoked)."""
    if bool(session_id) == bool(email):
        typer.echo("error: give a session id or --email, not both", err=True)
        raise typer.Exit(2)
    from certautopilot.auth import service as auth
    from certautopilot.auth import sessions as web_sessions

    try:
        with local_session(Settings.from_env()) as session:
            if session_id:
                web_sessions.revoke(session, session_id=session_id, actor="cli")
                count = 1
            else:
                user = auth.user_by_email(session, email)
                count = web_sessions.end_all(
                    session, user_id=user.id, actor="cli", reason=web_sessions.EndReason.ADMIN
                )
    except CertAutoPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{count} web session(s) ended")
