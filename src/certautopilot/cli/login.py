"""``certautopilot login``: remember a service's URL, an API token and a default project."""

from __future__ import annotations

from typing import Annotated

import typer

from certautopilot.cli.client import ExitCode
from certautopilot.cli.remote import (
    Login,
    ProjectOption,
    Target,
    connect,
    fail,
    read_login,
    write_login,
)
from certautopilot.config import ClientSettings


def login(
    url: Annotated[str, typer.Option("--url", help="The service, e.g. https://certs.example.com.")],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            prompt="API token",
            hide_input=True,
            help="An API token (asked for when not given, so it stays out of the shell history).",
        ),
    ],
    project: ProjectOption = None,
) -> None:
    """Check the token against the service, then store URL, token and project (mode 0600)."""
    target = Target(url, token, project)  # not resolve(): a broken old file is replaced
    with connect(target) as client:
        projects = client.get("/projects")
    slugs = [p["slug"] for p in projects]
    if project and project not in slugs:
        fail(
            ExitCode.USAGE,
            f"error: --project: no project {project!r} for this token"
            f" (projects: {', '.join(slugs) or 'none'})",
        )
    path = ClientSettings.from_env().login_file
    write_login(path, Login(url=url.rstrip("/"), token=token, project=project))
    typer.echo(f"logged in to {url}; stored in {path}", err=True)


def logout() -> None:
    """Forget the stored token (the token itself stays valid until revoked)."""
    path = ClientSettings.from_env().login_file
    stored = read_login(path)
    path.unlink(missing_ok=True)
    typer.echo("logged out" if stored.token else "was not logged in", err=True)
