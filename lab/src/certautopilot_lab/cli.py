"""``certautopilot lab ...``: start, stop and describe the local ACME lab."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from certautopilot.errors import ConfigError
from certautopilot_lab.a2c_cli import a2c_app
from certautopilot_lab.adcs_cli import adcs_app
from certautopilot_lab.core import lab_status, start_lab, start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import LabInfo

lab_app = typer.Typer(
    name="lab",
    help="The local ACME lab: Pebble + BIND 9 on loopback.",
    no_args_is_help=True,
)
lab_app.add_typer(adcs_app)  # certautopilot lab adcs: the AD CS Web Enrollment double
lab_app.add_typer(a2c_app)  # certautopilot lab a2c: acme2certifier, a second ACME CA


def default_lab_dir() -> Path:
    data_dir = os.environ.get("CERTAUTOPILOT_DATA_DIR")
    return (Path(data_dir) if data_dir else Path("data")) / "lab"


DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Lab directory [default: $CERTAUTOPILOT_DATA_DIR/lab or ./data/lab]"
    ),
]


@lab_app.command()
def start(
    lab_dir: DirOption = None,
    dns_port: Annotated[int, typer.Option(help="BIND's port on 127.0.0.1")] = 8053,
    acme_port: Annotated[int, typer.Option(help="Pebble's ACME port")] = 14000,
    mgmt_port: Annotated[int, typer.Option(help="Pebble's management port")] = 15000,
    free_ports: Annotated[bool, typer.Option(help="Pick free ports instead")] = False,
    cert_validity_seconds: Annotated[int, typer.Option(help="Lifetime of issued certs")] = 7776000,
    eab_key: Annotated[
        list[str] | None, typer.Option(help="EAB key as KID=base64url-HMAC (repeatable)")
    ] = None,
    eab_required: Annotated[bool, typer.Option(help="Require external account binding")] = False,
    nonce_reject_percent: Annotated[int, typer.Option(help="Share of nonces Pebble rejects")] = 0,
) -> None:
    """Start the lab (or show the one already running in the directory)."""
    base_dir = lab_dir or default_lab_dir()
    keys = _eab_keys(eab_key or [])
    try:
        if free_ports:
            info = start_lab_on_free_ports(
                base_dir,
                cert_validity_seconds=cert_validity_seconds,
                eab_keys=keys,
                eab_required=eab_required,
                nonce_reject_percent=nonce_reject_percent,
            )
        else:
            info = start_lab(
                base_dir,
                dns_port=dns_port,
                acme_port=acme_port,
                mgmt_port=mgmt_port,
                cert_validity_seconds=cert_validity_seconds,
                eab_keys=keys,
                eab_required=eab_required,
                nonce_reject_percent=nonce_reject_percent,
            )
    except ConfigError as exc:
        _fail(str(exc))
    _describe(info)


@lab_app.command()
def stop(lab_dir: DirOption = None) -> None:
    """Stop the lab's BIND and Pebble (only the processes this lab started)."""
    base_dir = lab_dir or default_lab_dir()
    stop_lab(base_dir)
    typer.echo(f"lab in {base_dir} stopped")


@lab_app.command()
def env(lab_dir: DirOption = None) -> None:
    """Print `export CERTAUTOPILOT_LAB_...=...` lines for the running lab (eval them)."""
    info = _running(lab_dir)
    for key, value in info.env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@lab_app.command()
def status(lab_dir: DirOption = None) -> None:
    """Say whether the lab runs and where; exits 1 when it does not."""
    _describe(_running(lab_dir))


def _running(lab_dir: Path | None) -> LabInfo:
    base_dir = lab_dir or default_lab_dir()
    info = lab_status(base_dir)
    if info is None:
        _fail(f"no lab is running in {base_dir} (start one with: certautopilot lab start)")
    return info


def _describe(info: LabInfo) -> None:
    typer.echo(f"lab directory   {info.base_dir}")
    typer.echo(f"ACME directory  {info.directory_url}")
    typer.echo(f"CA bundle       {info.ca_bundle_path}")
    typer.echo(f"DNS (BIND)      {info.dns_host}:{info.dns_port}  pid {info.named_pid}")
    typer.echo(f"Pebble          pid {info.pebble_pid}, management {info.mgmt_url}")
    typer.echo(f"zones           {', '.join(info.zones)}")
    typer.echo(f"TSIG key        {info.tsig_name} ({info.tsig_algorithm}); secret: lab env")


def _eab_keys(pairs: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for pair in pairs:
        kid, sep, hmac = pair.partition("=")
        if not sep or not kid or not hmac:
            _fail(f"--eab-key wants KID=HMAC, got {pair.split('=')[0]!r}...")
        keys[kid] = hmac
    return keys


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
