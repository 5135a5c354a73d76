"""``certautopilot lab a2c ...``: acme2certifier beside a running lab (validating through its
BIND), in ``<lab dir>/a2c``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from certautopilot.errors import ConfigError
from certautopilot_lab.a2c import A2CInfo, A2CSettings, a2c_status, start_a2c, stop_a2c
from certautopilot_lab.core import lab_status

a2c_app = typer.Typer(
    name="a2c",
    help="acme2certifier 0.46.3: a second ACME CA (ARI, EAB) beside the lab's Pebble.",
    no_args_is_help=True,
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Lab directory [default: $CERTAUTOPILOT_DATA_DIR/lab or ./data/lab]"
    ),
]


def _lab_dir(lab_dir: Path | None) -> Path:
    from certautopilot_lab.cli import default_lab_dir

    return lab_dir or default_lab_dir()


@a2c_app.command("start")
def start(
    lab_dir: DirOption = None,
    validity_days: Annotated[int, typer.Option(help="Lifetime of issued certificates")] = 90,
    eab_key: Annotated[
        list[str] | None, typer.Option(help="EAB key as KID=base64url-HMAC (repeatable)")
    ] = None,
    eab_required: Annotated[bool, typer.Option(help="Require external account binding")] = False,
    renewal_force: Annotated[bool, typer.Option(help="ARI windows say 'renew now'")] = False,
) -> None:
    """Start acme2certifier (the lab must be running: `certautopilot lab start`)."""
    base = _lab_dir(lab_dir)
    lab = lab_status(base)
    if lab is None:
        _fail(f"no lab is running in {base} (start one with: certautopilot lab start)")
    keys: list[tuple[str, str]] = []
    for pair in eab_key or []:
        kid, sep, hmac = pair.partition("=")
        if not sep or not kid or not hmac:
            _fail(f"--eab-key wants KID=HMAC, got {kid!r}...")
        keys.append((kid, hmac))
    settings = A2CSettings(validity_days, eab_required, tuple(keys), renewal_force)
    try:
        info = start_a2c(base / "a2c", lab, settings)
    except ConfigError as exc:
        _fail(str(exc))
    _describe(info)


@a2c_app.command("stop")
def stop(lab_dir: DirOption = None) -> None:
    """Stop the lab's acme2certifier and its DNS forward."""
    stop_a2c(_lab_dir(lab_dir) / "a2c")
    typer.echo("acme2certifier stopped")


@a2c_app.command("status")
def status(lab_dir: DirOption = None) -> None:
    """Say whether acme2certifier runs and where; exits 1 when it does not."""
    info = a2c_status(_lab_dir(lab_dir) / "a2c")
    if info is None:
        _fail("acme2certifier is not running (certautopilot lab a2c start)")
    _describe(info)


def _describe(info: A2CInfo) -> None:
    typer.echo(f"ACME directory  {info.directory_url}")
    typer.echo(f"CA bundle       {info.ca_bundle_path}")
    typer.echo(f"issuing CA      {info.root_path}")
    typer.echo(f"DNS forward     {info.forward_host}:53 -> the lab's BIND")
    typer.echo(f"gunicorn        pid {info.gunicorn_pid}, log {info.base_dir / 'gunicorn.log'}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
