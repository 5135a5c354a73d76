"""What every remote command shares: where the service is and who is calling (options,
then the environment, then what ``certautopilot login`` stored), output for people or for
scripts, and errors turned into exit codes (client.ExitCode)."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from certautopilot.cli.client import Client, ExitCode, Refused, Unreachable
from certautopilot.config import ClientSettings


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The service, e.g. https://certs.example.com (else CERTAUTOPILOT_URL, else login).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", help="An API token (else CERTAUTOPILOT_TOKEN, else the one login stored)."
    ),
]


def live_completions(
    ctx: typer.Context, ask: Callable[[Client, str | None], list[tuple[str, str]]]
) -> list[tuple[str, str]]:
    """A shell completion from the live service: ``ask(client, project)`` with the URL,
    token and project typed so far on the command line, else the environment, else the
    login file (a short timeout). Any failure completes nothing: a completion must never
    print an error into the user's prompt."""
    typed = ctx.params
    try:
        env = ClientSettings.from_env()
        stored = read_login(env.login_file)
        url = typed.get("url") or env.url or stored.url
        token = typed.get("token") or env.token or stored.token
        project = typed.get("project") or env.project or stored.project
        if not url or not token:
            return []
        with Client(url, token, timeout=2.0) as client:
            return ask(client, project)
    except (Refused, Unreachable, typer.Exit, ValueError, OSError, KeyError, TypeError):
        return []


def complete_project(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of --project: the slugs the token sees, with their names."""

    def ask(client: Client, _: str | None) -> list[tuple[str, str]]:
        rows = client.get("/projects")
        return [
            (str(r["slug"]), str(r.get("name") or ""))
            for r in rows
            if isinstance(r, dict) and str(r.get("slug", "")).startswith(incomplete)
        ]

    return live_completions(ctx, ask)


ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        "-p",
        help="The project's slug (else CERTAUTOPILOT_PROJECT, else the one login stored).",
        autocompletion=complete_project,
    ),
]
OutputOption = Annotated[
    Output,
    typer.Option("--output", "-o", help="table for people, json for scripts."),
]


@dataclass(frozen=True)
class Login:
    """What ``certautopilot login`` stores (a JSON file, mode 0600)."""

    url: str | None = None
    token: str | None = None
    project: str | None = None


def read_login(path: Path) -> Login:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Login()
    except (OSError, ValueError) as exc:
        fail(ExitCode.USAGE, f"error: cannot read {path}: {exc}")
    if not isinstance(data, dict):
        return Login()
    return Login(
        **{k: str(data[k]) for k in ("url", "token", "project") if isinstance(data.get(k), str)}
    )


def write_login(path: Path, login: Login) -> None:
    """Writes the file readable by its owner only: it holds a bearer token. The mode is set
    when the file is created, so the token is never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({k: v for k, v in vars(login).items() if v}, indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # a file made by someone else, or by an older umask
        f.write(body)


def fail(code: ExitCode, *lines: str) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(int(code))


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    project: str | None


def resolve(url: str | None, token: str | None, project: str | None = None) -> Target:
    """Options first, then CERTAUTOPILOT_URL/TOKEN/PROJECT, then the login file."""
    env = ClientSettings.from_env()
    stored = read_login(env.login_file)
    url = url or env.url or stored.url
    token = token or env.token or stored.token
    if not url:
        fail(
            ExitCode.USAGE,
            "error: no service URL: pass --url, set CERTAUTOPILOT_URL, or run certautopilot login",
        )
    if not token:
        fail(
            ExitCode.USAGE,
            "error: no API token: pass --token, set CERTAUTOPILOT_TOKEN,"
            " or run certautopilot login",
        )
    return Target(url, token, project or env.project or stored.project)


def need_project(target: Target) -> str:
    if not target.project:
        fail(
            ExitCode.USAGE,
            "error: no project: pass --project, set CERTAUTOPILOT_PROJECT,"
            " or run certautopilot login --project",
        )
    return target.project


@contextmanager
def connect(target: Target) -> Iterator[Client]:
    """A client whose errors end the command with their exit code and a readable message."""
    client = Client(target.url, target.token)
    try:
        yield client
    except Refused as exc:
        fail(ExitCode.REFUSED, *exc.lines())
    except Unreachable as exc:
        fail(ExitCode.UNREACHABLE, f"error: {exc.url} is not reachable: {exc.reason}")
    finally:
        client.close()


# -- the shared options, defined once -------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    """What a remote command's shared options resolve to: the service and the token, the
    project (``slug`` fails with a usage error when none is given anywhere) and how to print."""

    target: Target
    output: Output

    @property
    def slug(self) -> str:
        return need_project(self.target)

    def path(self, template: str) -> str:
        """``template`` with ``{project}`` filled in."""
        return template.format(project=self.slug)

    def client(self) -> AbstractContextManager[Client]:
        return connect(self.target)


Command = Callable[..., None]
_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _shared(in_project: bool, prints: bool) -> list[inspect.Parameter]:
    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, _KEYWORD, default=default, annotation=annotation)

    shared = [option("project", ProjectOption, None)] if in_project else []
    shared += [option("url", UrlOption, None), option("token", TokenOption, None)]
    if prints:
        shared.append(option("output", OutputOption, Output.TABLE))
    return shared


def remote_command(
    app: typer.Typer, name: str | None = None, *, in_project: bool = True, prints: bool = True
) -> Callable[[Command], Command]:
    """Registers ``fn(remote: Remote, <its own parameters>)`` as ``app``'s command ``name``
    with the shared options after its own: ``--project/-p`` (unless ``in_project`` is
    false), ``--url``, ``--token`` and ``--output/-o`` (unless ``prints`` is false). Typer
    reads the command's parameters from its signature, so the registered function shows
    the combined one; ``fn`` itself is returned unchanged."""

    def register(fn: Command) -> Command:
        own = list(inspect.signature(fn, eval_str=True).parameters.values())
        if not own or own[0].name != "remote":
            raise TypeError(f"{fn.__name__}: the first parameter must be 'remote: Remote'")
        params = own[1:] + _shared(in_project, prints)

        def command(**values: Any) -> None:
            target = resolve(values.pop("url"), values.pop("token"), values.pop("project", None))
            fn(Remote(target, values.pop("output", Output.TABLE)), **values)

        command.__name__, command.__qualname__ = fn.__name__, fn.__qualname__
        command.__doc__, command.__module__ = fn.__doc__, fn.__module__
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name)(command)
        return fn

    return register


# -- output ---------------------------------------------------------------------------------
Column = tuple[str, Callable[[dict[str, Any]], Any]]


def col(name: str, key: str | None = None) -> Column:
    """A column showing ``row[key]`` (dotted keys reach into nested objects)."""
    path = (key or name).split(".")

    def pick(row: dict[str, Any]) -> Any:
        value: Any = row
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    return (name.upper(), pick)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Plain aligned columns, never cut to the terminal's width (a pipe has none)."""
    grid = [[name for name, _ in columns]]
    grid += [[cell(pick(row)) for _, pick in columns] for row in rows]
    widths = [max(len(r[i]) for r in grid) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in grid
    )


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def emit_rows(output: Output, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    if output == Output.JSON:
        emit_json(list(rows))
    elif rows:
        typer.echo(table(rows, columns))
    else:
        typer.echo("(none)", err=True)


def emit_object(output: Output, obj: dict[str, Any], fields: Sequence[Column]) -> None:
    if output == Output.JSON:
        emit_json(obj)
        return
    width = max(len(name) for name, _ in fields)
    for name, pick in fields:
        typer.echo(f"{name.lower().replace('_', ' ') + ':':<{width + 2}}{cell(pick(obj))}")
