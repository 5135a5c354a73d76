"""``certautopilot lab adcs``: serve the certsrv test double in the foreground for the demo."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from certautopilot_lab.adcs_double import DEFAULT_TEMPLATES, DEFAULT_USERS, AdcsDouble, AuthMode
from certautopilot_lab.adcs_double_ca import pem, write_file

adcs_app = typer.Typer(
    name="adcs",
    help="A test double of AD CS Web Enrollment (/certsrv) on a real two-level CA.",
    invoke_without_command=True,
)


def _default_dir() -> Path:
    data_dir = os.environ.get("CERTAUTOPILOT_DATA_DIR")
    return (Path(data_dir) if data_dir else Path("data")) / "lab" / "adcs"


@adcs_app.callback()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port")] = 8443,
    auth: Annotated[
        str, typer.Option(help="Comma-separated: basic, ntlm, client_cert")
    ] = "basic,ntlm",
    require_channel_binding: Annotated[
        bool, typer.Option(help="Refuse NTLM without tls-server-end-point binding")
    ] = False,
    lab_dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Keeps the CA between runs [default: $DATA_DIR/lab/adcs]"),
    ] = None,
) -> None:
    """Serve /certsrv until Ctrl-C: templates WebServer (issues at once) and
    WebServerApproval (waits for approve/deny); other templates are denied."""
    modes = {m.strip() for m in auth.split(",") if m.strip()}
    unknown = modes - {"basic", "ntlm", "client_cert"}
    if unknown or not modes:
        typer.echo(f"error: --auth takes basic, ntlm, client_cert (got {auth!r})", err=True)
        raise typer.Exit(1)
    base = lab_dir or _default_dir()
    base.mkdir(parents=True, exist_ok=True)
    auth_modes: set[AuthMode] = {m for m in ("basic", "ntlm", "client_cert") if m in modes}
    double = AdcsDouble(
        base,
        host=host,
        port=port,
        auth_modes=auth_modes,
        require_channel_binding=require_channel_binding,
    ).start()
    bundle = base / "root-ca.pem"
    write_file(bundle, pem(double.ca.root).encode(), 0o644)
    user, password = next(iter(DEFAULT_USERS.items()))
    adcs: dict[str, object] = {
        "url": double.url,
        "templates": list(DEFAULT_TEMPLATES),
        "ca_bundle_pem": "<contents of the CA bundle>",
    }
    if "client_cert" in modes:
        cert_pem, client_key = double.client_certificate("svc-pki")
        write_file(base / "client.pem", cert_pem.encode(), 0o644)
        write_file(base / "client.key", client_key.encode(), 0o600)
        adcs |= {
            "auth": "client_cert",
            "client_cert_pem": "<client.pem>",
            "client_key_pem": "<client.key>",
        }
    else:
        adcs |= {
            "auth": "ntlm" if "ntlm" in modes else "basic",
            "username": user,
            "password": password,
        }
    control = (
        f"curl -s --cacert {shlex.quote(str(bundle))} -X POST "
        f"-H 'X-Double-Control: {double.control_token}'"
    )
    typer.echo(
        f"AD CS double   {double.url}  (auth: {', '.join(sorted(modes))}"
        + (", channel binding required" if require_channel_binding else "")
        + ")"
    )
    typer.echo(f"CA bundle      {bundle}")
    if "client_cert" in modes:
        typer.echo(f"client cert    {base / 'client.pem'}  key {base / 'client.key'}")
    else:
        typer.echo(f"user           {user}  password {password}")
    typer.echo(
        "templates      WebServer (issues at once), WebServerApproval (waits for a CA manager)"
    )
    typer.echo(f"approve        {control} '{double.url}/_double/approve?ReqID=<N>'")
    typer.echo(f"deny           {control} '{double.url}/_double/deny?ReqID=<N>'")
    typer.echo("issuer body    " + json.dumps({"name": "corp-ca", "kind": "adcs", "adcs": adcs}))
    typer.echo("Ctrl-C stops it.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        double.stop()
