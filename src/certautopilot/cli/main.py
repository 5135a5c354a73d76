"""The ``certautopilot`` command: serve, worker, token, kek, user; lab and demo by plugin."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points

import typer

from certautopilot.cli import kek as kek_cli
from certautopilot.cli import plugins as plugins_cli
from certautopilot.cli import token as token_cli
from certautopilot.cli import user as user_cli
from certautopilot.config import Settings, child_environ

app = typer.Typer(help="CertAutoPilot: certificate lifecycle service.", no_args_is_help=True)
app.add_typer(token_cli.app, name="token")
app.add_typer(kek_cli.app, name="kek")
app.add_typer(user_cli.app, name="user")
app.command(name="plugins")(plugins_cli.plugins)


# Commands other distributions add (group ``certautopilot.cli``): the lab and the demo come
# from ``certautopilot-lab`` (./lab), so a production install has no fake CA to start.
CLI_GROUP = "certautopilot.cli"
LAB_COMMANDS = ("lab", "demo")  # a hint instead of "No such command" when the lab is absent


def add_plugin_commands(target: typer.Typer, entry_points: Iterable[EntryPoint]) -> None:
    """Add each entry point as a command group (a typer.Typer) or a command (a function).

    A plugin that fails to load, or that takes a built-in command's name, is skipped with a
    line on stderr: a broken extra must not take ``serve`` or ``worker`` down with it.
    """
    taken = {c.name or getattr(c.callback, "__name__", "") for c in target.registered_commands}
    taken |= {g.name or "" for g in target.registered_groups}
    for entry in entry_points:
        if entry.name in taken:
            _skip(entry, f"{entry.name!r} is taken")
            continue
        try:
            obj = entry.load()
        except Exception as exc:  # any import error of a third-party package
            _skip(entry, str(exc))
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=entry.name)
        elif callable(obj):
            target.command(name=entry.name)(obj)
        else:
            _skip(entry, "neither a typer.Typer nor a function")
            continue
        taken.add(entry.name)
    for name in LAB_COMMANDS:
        if name not in taken:
            target.command(
                name=name,
                hidden=True,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            )(_lab_missing(name))


def _skip(entry: EntryPoint, why: str) -> None:
    typer.echo(f"warning: CLI plugin {entry.value} skipped: {why}", err=True)


def _lab_missing(name: str) -> Callable[[], None]:
    def missing() -> None:
        typer.echo(
            f"error: `certautopilot {name}` comes with the lab distribution certautopilot-lab, "
            "which is not installed; from a clone: pip install -e ./lab (make setup does it)",
            err=True,
        )
        raise typer.Exit(1)

    missing.__doc__ = f"Needs certautopilot-lab ({name})."
    return missing


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (serve does this on start)."""
    from certautopilot.db.migrate import upgrade

    upgrade(Settings.from_env())
    typer.echo("database is up to date")


@app.command()
def worker() -> None:
    """Run a durable worker (issuance, renewal, distribution). Several may run on PostgreSQL."""
    from certautopilot.workflows.worker import start_worker, stop_worker

    settings = Settings.from_env()
    _logging(settings)
    start_worker(settings)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    typer.echo(f"worker {settings.executor_id} running", err=True)
    while not stopping:
        time.sleep(0.2)
    # Workflows waiting on people sit in a blocking recv that DBOS cannot interrupt; they
    # are durable, so after a short grace period the process simply ends (as after a crash,
    # they resume on the next start with this executor id).
    closer = threading.Thread(target=stop_worker, daemon=True)
    closer.start()
    closer.join(timeout=5)
    logging.shutdown()
    os._exit(0)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        2, min=0, help="Worker child processes to run (0: API only, workers run elsewhere)."
    ),
) -> None:
    """Run the API and UI, with durable workers in child processes.

    Each worker gets a stable executor id (``<CERTAUTOPILOT_EXECUTOR_ID>-<n>``), so a
    restarted ``serve`` resumes the workflows its workers had in flight.
    """
    import uvicorn

    from certautopilot.app import create_app
    from certautopilot.db.migrate import upgrade

    settings = Settings.from_env()
    _logging(settings)
    upgrade(settings)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "certautopilot.cli", "worker"],
            env=child_environ({"CERTAUTOPILOT_EXECUTOR_ID": f"{settings.executor_id}-{n}"}),
        )
        for n in range(1, workers + 1)
    ]
    level = settings.log_level.lower()
    try:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=level,
            access_log=level in ("debug", "info"),
        )
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


add_plugin_commands(app, entry_points(group=CLI_GROUP))  # last: built-ins are taken first
