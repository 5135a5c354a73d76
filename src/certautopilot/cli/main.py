"""The ``certautopilot`` command: serve, worker, token, kek, user, sessions, and the remote
commands (certs, issuers, ...) that talk to a running service; lab and demo by plugin."""

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
from pathlib import Path

import typer

from certautopilot.cli import audit as audit_cli
from certautopilot.cli import backup as backup_cli
from certautopilot.cli import bulk as _bulk  # noqa: F401  (adds certs bulk)
from certautopilot.cli import certs as certs_cli
from certautopilot.cli import delivery as _delivery  # noqa: F401  (adds certs deploy, ...)
from certautopilot.cli import imports as imports_cli
from certautopilot.cli import kek as kek_cli
from certautopilot.cli import login as login_cli
from certautopilot.cli import plugins as plugins_cli
from certautopilot.cli import resources
from certautopilot.cli import sessions as sessions_cli
from certautopilot.cli import token as token_cli
from certautopilot.cli import user as user_cli
from certautopilot.config import LogFormat, Settings, child_environ, export_metrics_dir

# Plain click help (no rich boxes): it wraps instead of cutting option names and help off
# with an ellipsis, and reads the same in a terminal, a pipe or a man page.
app = typer.Typer(
    help="CertAutoPilot: certificate lifecycle service.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(token_cli.app, name="token")
app.add_typer(kek_cli.app, name="kek")
app.add_typer(user_cli.app, name="user")
app.add_typer(sessions_cli.app, name="sessions")
app.add_typer(audit_cli.app, name="audit")
app.command(name="plugins")(plugins_cli.plugins)
app.command(name="backup")(backup_cli.backup)
app.command(name="restore")(backup_cli.restore)
# Remote commands: a running service over its HTTP API (README, "Command line").
app.command(name="login")(login_cli.login)
app.command(name="logout")(login_cli.logout)
app.add_typer(certs_cli.app, name="certs")
app.add_typer(imports_cli.app, name="import")
app.add_typer(resources.projects, name="projects")
app.add_typer(resources.members, name="members")
app.add_typer(resources.issuers, name="issuers")
app.add_typer(resources.zones, name="zones")
app.add_typer(resources.targets, name="targets")
app.add_typer(resources.requests, name="requests")
app.add_typer(resources.policy, name="policy")
app.add_typer(resources.tokens, name="tokens")
app.add_typer(resources.channels, name="channels")
app.add_typer(resources.alerts, name="expiry-alerts")


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
    from certautopilot.logs import configure

    configure(level=settings.log_level, json_lines=settings.log_format == LogFormat.JSON)


def _announce(settings: Settings, text: str) -> None:
    """A line for the operator on stderr: a log record when logs are JSON lines (every
    line of the stream stays JSON), plain text otherwise (whatever the log level)."""
    if settings.log_format == LogFormat.JSON:
        logging.getLogger("certautopilot.cli").info(text)
    else:
        typer.echo(text, err=True)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (serve does this on start)."""
    from certautopilot.db.migrate import upgrade

    upgrade(Settings.from_env())
    typer.echo("database is up to date")


@app.command()
def worker(
    parent_pid: int = typer.Option(
        0, hidden=True, help="Stop when this process (the serve that started us) is gone."
    ),
    metrics_port: int = typer.Option(
        0,
        min=0,
        max=65535,
        help="Serve this host's worker counters on this port (for a worker on a host"
        " without the API; 0: none, the API's /metrics has them).",
    ),
) -> None:
    """Run a durable worker (issuance, renewal, distribution). Several may run on PostgreSQL."""
    from certautopilot import telemetry
    from certautopilot.workflows.worker import start_worker, stop_worker

    settings = Settings.from_env()
    _logging(settings)
    export_metrics_dir(settings)  # before any counter is touched: they live in files
    telemetry.enable_multiprocess()
    if metrics_port:
        _serve_worker_metrics(settings, metrics_port)
    start_worker(settings)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _announce(settings, f"worker {settings.executor_id} running")
    # A serve killed with SIGKILL cannot stop us: we notice that we were re-parented and
    # stop, so the next serve never runs a second worker under the same executor id.
    while not stopping and not (parent_pid and os.getppid() != parent_pid):
        time.sleep(0.2)
    # Workflows waiting on people sit in a blocking recv that DBOS cannot interrupt; they
    # are durable, so after a short grace period the process simply ends (as after a crash,
    # they resume on the next start with this executor id).
    closer = threading.Thread(target=stop_worker, daemon=True)
    closer.start()
    closer.join(timeout=5)
    logging.shutdown()
    os._exit(0)


def _serve_worker_metrics(settings: Settings, port: int) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.metrics_dir))  # type: ignore[no-untyped-call]
    start_http_server(port, addr="0.0.0.0", registry=registry)


def _serve_metrics(settings: Settings) -> Callable[[], None]:
    """``/metrics`` on ``CERTAUTOPILOT_METRICS_ADDRESS`` (a thread of this process);
    returns what stops it."""
    from prometheus_client import start_http_server

    from certautopilot.clock import utcnow
    from certautopilot.db.session import make_engine, make_sessionmaker
    from certautopilot.ops import metrics

    assert settings.metrics_address is not None
    host, port = settings.metrics_address
    sessions = make_sessionmaker(make_engine(settings))
    server, _thread = start_http_server(
        port, addr=host, registry=metrics.registry(settings.metrics_dir, sessions, utcnow)
    )
    return server.shutdown


def clear_dead_metrics_files(directory: Path) -> list[Path]:
    """Removes the multiprocess files of processes that are gone, and only those; answers
    what it removed.

    prometheus-client writes one file per process and metric type, named
    ``<type>_<pid>.db`` (``gauge_<mode>_<pid>.db`` for gauges). Its documented protocol wipes
    the whole directory before the processes start, but a ``serve`` often starts beside
    workers that already run on the same host (``certautopilot worker --metrics-port``,
    or a second ``serve``): wiping their files would reset their counters under them, and
    Prometheus would read a drop it cannot tell from a restart. So a file is removed only
    when no process with its pid is alive: a dead process's counters restart at zero with
    this ``serve`` (as Prometheus expects of a restarted target), a live one's go on.
    A pid reused by an unrelated live process keeps its stale file until that process
    ends; the cost is an old count carried over, never a lost one."""
    directory.mkdir(parents=True, exist_ok=True)
    removed = []
    for stale in directory.glob("*.db"):
        pid = _file_pid(stale)
        if pid is not None and _alive(pid):
            continue
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def _file_pid(path: Path) -> int | None:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        2, min=0, help="Worker child processes to run (0: API only, workers run elsewhere)."
    ),
) -> None:
    """Run the API and UI, with durable workers in child processes.

    Each worker gets a stable executor id (CERTAUTOPILOT_EXECUTOR_ID, then -1, -2, ...),
    so a restarted serve resumes the workflows its workers had in flight.
    """
    import uvicorn

    from certautopilot.app import create_app
    from certautopilot.db.migrate import upgrade

    settings = Settings.from_env()
    _logging(settings)
    upgrade(settings)
    clear_dead_metrics_files(settings.metrics_dir)
    if settings.metrics_address is not None:
        _serve_metrics(settings)
    # uvicorn answers SIGTERM/SIGINT by shutting down, then restores the handlers it found
    # and raises the signal again. Under the default SIGTERM handler that kills this process
    # before the ``finally`` below, leaving the workers running; with these handlers the
    # re-raised signal is a no-op and the workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "certautopilot.cli", "worker", "--parent-pid", str(os.getpid())],
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
            log_config=None,  # our handlers (text or JSON lines, see certautopilot.logs)
            access_log=False,  # api.request_id writes one with the request's context
        )
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


add_plugin_commands(app, entry_points(group=CLI_GROUP))  # last: built-ins are taken first
