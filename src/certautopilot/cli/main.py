"""The ``certautopilot`` command: serve, worker, token, kek, lab, demo."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import typer

from certautopilot.cli import kek as kek_cli
from certautopilot.cli import plugins as plugins_cli
from certautopilot.cli import token as token_cli
from certautopilot.cli import user as user_cli
from certautopilot.config import Settings

app = typer.Typer(help="CertAutoPilot: certificate lifecycle service.", no_args_is_help=True)
app.add_typer(token_cli.app, name="token")
app.add_typer(kek_cli.app, name="kek")
app.add_typer(user_cli.app, name="user")
app.command(name="plugins")(plugins_cli.plugins)


def _lab_app() -> None:
    try:
        from certautopilot.lab.cli import lab_app
    except ImportError:  # pragma: no cover - the lab ships with the package
        return
    app.add_typer(lab_app, name="lab", help="The local ACME lab: Pebble + BIND 9 on loopback.")


_lab_app()


def _logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CERTAUTOPILOT_LOG_LEVEL", "INFO"),
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

    _logging()
    settings = Settings.from_env()
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

    _logging()
    settings = Settings.from_env()
    upgrade(settings)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "certautopilot.cli", "worker"],
            env={**os.environ, "CERTAUTOPILOT_EXECUTOR_ID": f"{settings.executor_id}-{n}"},
        )
        for n in range(1, workers + 1)
    ]
    level = os.environ.get("CERTAUTOPILOT_LOG_LEVEL", "INFO").lower()
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


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address for the service."),
    port: int = typer.Option(8000, help="Port for the service."),
) -> None:
    """Start the local ACME lab and the service, issue one real certificate, keep serving."""
    from certautopilot.cli.demo import run_demo

    run_demo(host, port)
