"""``certautopilot import``: certificates issued elsewhere, read here and uploaded to the
service (``POST /projects/{project}/imports``); certbot's and acme.sh's state taken over."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path
from typing import Annotated, Any

import typer

from certautopilot.certificates.bundles import MAX_FILE_BYTES
from certautopilot.certificates.takeover import (
    LocalLineage,
    acme_sh_lineages,
    certbot_lineages,
)
from certautopilot.cli.client import ExitCode
from certautopilot.cli.remote import (
    Output,
    Remote,
    col,
    emit_json,
    emit_rows,
    fail,
    remote_command,
)

app = typer.Typer(
    help="Import certificates issued elsewhere (PEM, PKCS#12, certbot, acme.sh).",
    no_args_is_help=True,
)

PathArg = Annotated[Path, typer.Argument(help="A file, a folder or a tarball.")]
COLUMNS = [
    col("outcome"),
    col("id"),
    col("common_name"),
    col("not_after"),
    col("key", "has_key"),
    col("expired"),
    col("adopt", "adoption.automatic"),
    col("todo", "adoption.todo"),
]


def _file(name: str, data: bytes, password: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "content_base64": base64.b64encode(data).decode()}
    if password is not None:
        body["password"] = password
    return body


def _folder_tarball(folder: Path) -> bytes:
    """A folder as one tarball: its subfolders stay groups (a cert beside its key)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.stat().st_size <= MAX_FILE_BYTES:
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return out.getvalue()


def _send(remote: Remote, body: dict[str, Any]) -> None:
    with remote.client() as client:
        result = client.json("POST", remote.path("/projects/{project}/imports"), json=body)
    if remote.output == Output.JSON:
        emit_json(result)
        return
    rows = [{**r, "outcome": "imported"} for r in result["imported"]]
    rows += [{**r, "outcome": "merged"} for r in result["merged"]]
    rows += [
        {"outcome": "refused", "common_name": r["file"], "todo": [r["error"]]}
        for r in result["refused"]
    ]
    emit_rows(remote.output, rows, COLUMNS)


@remote_command(app, "pem")
def pem(
    remote: Remote,
    path: PathArg,
) -> None:
    """PEM files (certificate, chain, key in one file or beside each other), a folder or a
    tarball of them."""
    if path.is_dir():
        files = [_file(path.name + ".tar.gz", _folder_tarball(path))]
    elif path.is_file():
        files = [_file(path.name, path.read_bytes())]
    else:
        fail(ExitCode.USAGE, f"error: {path} does not exist")
    _send(remote, {"files": files, "source": "pem"})


@remote_command(app, "pkcs12")
def pkcs12(
    remote: Remote,
    path: PathArg,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, envvar="CERTAUTOPILOT_P12_PASSWORD")
    ],
) -> None:
    """A PKCS#12 (.p12/.pfx) bundle and its password."""
    if not path.is_file():
        fail(ExitCode.USAGE, f"error: {path} is not a file")
    files = [_file(path.name, path.read_bytes(), password)]
    _send(remote, {"files": files, "source": "pkcs12"})


def _takeover(remote: Remote, lineages: list[LocalLineage], tool: str) -> None:
    files = [_file(name, data) for lin in lineages for name, data in lin.files]
    if not files:
        fail(ExitCode.USAGE, f"error: no {tool} certificate found")
    body = {"files": files, "source": tool, "lineages": [x.as_json() for x in lineages]}
    _send(remote, body)


@remote_command(app, "certbot")
def certbot(
    remote: Remote,
    path: Annotated[Path, typer.Argument(help="certbot's config dir, e.g. /etc/letsencrypt")],
) -> None:
    """Every certbot lineage (live/ and renewal/*.conf), each with its key and chain."""
    try:
        lineages = certbot_lineages(path)
    except (OSError, ValueError) as exc:
        fail(ExitCode.USAGE, f"error: {exc}")
    _takeover(remote, lineages, "certbot")


@remote_command(app, "acme.sh")
def acme_sh(
    remote: Remote,
    path: Annotated[Path, typer.Argument(help="acme.sh's home, e.g. ~/.acme.sh")],
) -> None:
    """Every acme.sh certificate (<domain>/ and <domain>_ecc/ with its .conf)."""
    try:
        lineages = acme_sh_lineages(path.expanduser())
    except (OSError, ValueError) as exc:
        fail(ExitCode.USAGE, f"error: {exc}")
    _takeover(remote, lineages, "acme.sh")
