"""``certautopilot certs``: certificates on a running service, over its HTTP API."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from certautopilot.certificates.states import CertStatus
from certautopilot.cli.client import Client, ExitCode
from certautopilot.cli.remote import (
    Output,
    Remote,
    col,
    emit_json,
    emit_object,
    emit_rows,
    fail,
    live_completions,
    remote_command,
)

app = typer.Typer(
    help="Certificates: list, request, wait for, renew, revoke, download.", no_args_is_help=True
)

#: Where ``wait`` stops: the certificate needs nobody and nothing more.
DONE = {
    CertStatus.ISSUED: ExitCode.OK,
    CertStatus.FAILED: ExitCode.FAILED,
    CertStatus.REJECTED: ExitCode.FAILED,
    CertStatus.REVOKED: ExitCode.FAILED,
}
DOWNLOADS = ("fullchain", "chain", "cert", "key")
POLL_SECONDS = 1.0

LIST_COLUMNS = [
    col("id"),
    col("common_name"),
    col("status"),
    col("not_after", "current.not_after"),
    col("sans"),
]
SHOW_FIELDS = [
    col("id"),
    col("common_name"),
    col("sans"),
    col("status"),
    col("issuer"),
    col("key_type"),
    col("auto_renew"),
    col("serial", "current.serial"),
    col("not_before", "current.not_before"),
    col("not_after", "current.not_after"),
    col("next_renewal", "renewal.next_at"),
    col("pending_action"),
    col("error", "error.detail"),
]

WaitOption = Annotated[bool, typer.Option("--wait", help="Wait until it is issued (or fails).")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait at most (exit code 3 after).")
]


def cert_path(project: str) -> str:
    return f"/projects/{project}/certificates"


def complete_certificate(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of a certificate ID from the live service: the ids of the project's
    newest certificates (``COMPLETION_ROWS``) that start with what was typed, each with its
    common name and status as the help text zsh and fish show (typer keeps only values that
    start with the typed word, so a name cannot be typed for its id)."""

    def ask(client: Client, project: str | None) -> list[tuple[str, str]]:
        if not project:
            return []
        page = client.get(cert_path(project), limit=COMPLETION_ROWS)  # newest first
        return [
            (str(row["id"]), f"{row['common_name']} ({row['status']})")
            for row in page["items"]
            if str(row["id"]).startswith(incomplete)
        ]

    return live_completions(ctx, ask)


COMPLETION_ROWS = 1000  # the API's largest page
CertIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="ID",
        help="The certificate's id (tab completes it from the service).",
        autocompletion=complete_certificate,
    ),
]


@remote_command(app, "list")
def list_(
    remote: Remote,
    status: Annotated[str | None, typer.Option(help="Only this status, e.g. issued.")] = None,
    q: Annotated[str | None, typer.Option("--search", "-q", help="Names containing this.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 50,
    all_pages: Annotated[
        bool, typer.Option("--all", help="Every page, not just the first.")
    ] = False,
) -> None:
    """The project's certificates, by common name."""
    rows: list[dict[str, Any]] = []
    with remote.client() as client:
        cursor = None
        while True:
            page = client.get(
                cert_path(remote.slug), status=status, q=q, limit=limit, cursor=cursor
            )
            rows += page["items"]
            cursor = page.get("next_cursor")
            if not all_pages or not cursor:
                break
    emit_rows(remote.output, rows, LIST_COLUMNS)


@remote_command(app)
def show(remote: Remote, cert_id: CertIdArgument) -> None:
    """One certificate: names, status, current version, next renewal, error."""
    with remote.client() as client:
        cert = client.get(f"{cert_path(remote.slug)}/{cert_id}")
    emit_object(remote.output, cert, SHOW_FIELDS)


def issuer_id(client: Client, slug: str, issuer: str) -> str:
    """An issuer's id from its id or its name (names are what people remember)."""
    issuers = client.get(f"/projects/{slug}/issuers")
    for item in issuers:
        if issuer in (item["id"], item["name"]):
            return str(item["id"])
    names = ", ".join(sorted(i["name"] for i in issuers)) or "none"
    fail(ExitCode.USAGE, f"error: --issuer: no issuer {issuer!r} in {slug} (issuers: {names})")


@remote_command(app)
def create(
    remote: Remote,
    common_name: Annotated[
        str, typer.Argument(metavar="NAME", help="The common name, e.g. www.example.com.")
    ],
    issuer: Annotated[str, typer.Option(help="The issuer's name or id.")],
    san: Annotated[
        list[str] | None,
        typer.Option("--san", metavar="NAME", help="Another DNS name (repeat for more)."),
    ] = None,
    key_type: Annotated[
        str, typer.Option(help="ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096.")
    ] = "ecdsa-p256",
    auto_renew: Annotated[
        bool, typer.Option("--auto-renew/--no-auto-renew", help="Renew it before it expires.")
    ] = True,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600,
) -> None:
    """Request a certificate; with --wait, return once it is issued (or has failed)."""
    slug = remote.slug
    with remote.client() as client:
        body = {
            "issuer": issuer_id(client, slug, issuer),
            "common_name": common_name,
            "sans": san or [],
            "key_type": key_type,
            "auto_renew": auto_renew,
        }
        cert = client.json("POST", cert_path(slug), json=body)
        if wait:
            cert = _wait(client, slug, cert, timeout)
    _finish(remote.output, cert)


@remote_command(app)
def renew(
    remote: Remote, cert_id: CertIdArgument, wait: WaitOption = False, timeout: TimeoutOption = 600
) -> None:
    """Renew now (a new key and certificate); with --wait, return once it is issued."""
    slug = remote.slug
    with remote.client() as client:
        cert = client.json("POST", f"{cert_path(slug)}/{cert_id}/renew")
        if wait:
            cert = _wait(client, slug, cert, timeout)
    _finish(remote.output, cert)


@remote_command(app)
def wait(remote: Remote, cert_id: CertIdArgument, timeout: TimeoutOption = 600) -> None:
    """Wait until the certificate is issued (exit 0), failed or rejected (exit 4)."""
    slug = remote.slug
    with remote.client() as client:
        cert = _wait(client, slug, client.get(f"{cert_path(slug)}/{cert_id}"), timeout)
    _finish(remote.output, cert)


def _wait(client: Client, slug: str, cert: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Polls until the status is one of DONE; each change of status is a line on stderr."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        if cert["status"] != seen:
            seen = cert["status"]
            typer.echo(f"{cert['id']}: {seen}", err=True)
        if cert["status"] in DONE:
            return cert
        if time.monotonic() >= deadline:
            fail(ExitCode.UNREACHABLE, f"error: still {seen} after {timeout:g} s")
        time.sleep(POLL_SECONDS)
        cert = client.get(f"{cert_path(slug)}/{cert['id']}")


def _finish(output: Output, cert: dict[str, Any]) -> None:
    emit_object(output, cert, SHOW_FIELDS)
    code = DONE.get(CertStatus(cert["status"]), ExitCode.OK)
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


@remote_command(app)
def revoke(
    remote: Remote,
    cert_id: CertIdArgument,
    reason: Annotated[
        str,
        typer.Option(
            help="An RFC 5280 reason: unspecified, keyCompromise, superseded,"
            " cessationOfOperation, ..."
        ),
    ] = "unspecified",
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Also revoke earlier versions still valid.")
    ] = False,
) -> None:
    """Revoke the current version at the CA."""
    with remote.client() as client:
        cert = client.json(
            "POST",
            f"{cert_path(remote.slug)}/{cert_id}/revoke",
            json={"reason": reason, "all_versions": all_versions},
        )
    emit_object(remote.output, cert, SHOW_FIELDS)


@remote_command(app, prints=False)
def download(
    remote: Remote,
    cert_id: CertIdArgument,
    what: Annotated[
        str,
        typer.Option(
            "--what",
            "--format",
            help="fullchain, chain, cert, key, or pkcs12 (key and pkcs12: admins only, audited).",
        ),
    ] = "fullchain",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write to this file (a key or pkcs12: mode 0600) instead of stdout."
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            metavar="FILE",
            help="pkcs12 only: the bundle's password, read from FILE (- for stdin).",
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            min=1,
            metavar="N",
            help="An earlier version still valid (certs versions lists them); not pkcs12.",
        ),
    ] = None,
) -> None:
    """The current version (or --version N) as PEM, or the current one as a PKCS#12 bundle
    of key, certificate and chain."""
    if what == "p12":
        what = "pkcs12"
    if what not in (*DOWNLOADS, "pkcs12"):
        raise typer.BadParameter(f"one of {', '.join(DOWNLOADS)}, pkcs12", param_hint="--what")
    if what == "pkcs12" and password_file is None:
        raise typer.BadParameter("pkcs12 needs a password", param_hint="--password-file")
    if what == "pkcs12" and version is not None:
        raise typer.BadParameter("pkcs12 is of the current version only", param_hint="--version")
    base = f"{cert_path(remote.slug)}/{cert_id}"
    with remote.client() as client:
        if what == "pkcs12":
            assert password_file is not None
            body = {"password": _read_password(password_file)}
            data = client.request("POST", f"{base}/certificate.p12", json=body).content
        elif version is not None:
            data = client.request("GET", f"{base}/versions/{version}/{what}.pem").content
        else:
            data = client.request("GET", f"{base}/{what}.pem").content
    if out is None:
        if what == "pkcs12":
            typer.get_binary_stream("stdout").write(data)
        else:
            text = data.decode()
            typer.echo(text, nl=not text.endswith("\n"))
        return
    private = what in ("key", "pkcs12")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    typer.echo(f"wrote {out}", err=True)


def _read_password(file: Path) -> str:
    try:
        text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        fail(ExitCode.USAGE, f"error: --password-file: {exc}")
    password = text.rstrip("\r\n")
    if not password:
        fail(ExitCode.USAGE, "error: --password-file: the file is empty")
    return password


@remote_command(app, "dns-confirm")
def dns_confirm(
    remote: Remote, cert_id: CertIdArgument, wait_: WaitOption = False, timeout: TimeoutOption = 600
) -> None:
    """Tell the service the manual DNS records are in place (the "I've added it" button);
    refused (exit code 1) when the certificate is not waiting for DNS."""
    slug = remote.slug
    with remote.client() as client:
        cert = client.json("POST", f"{cert_path(slug)}/{cert_id}/dns-confirm")
        if wait_:
            cert = _wait(client, slug, cert, timeout)
    if wait_:
        _finish(remote.output, cert)
    else:
        emit_object(remote.output, cert, SHOW_FIELDS)


TIMELINE_COLUMNS = [col("at"), col("type"), col("actor"), col("detail")]


@remote_command(app)
def timeline(remote: Remote, cert_id: CertIdArgument) -> None:
    """What happened to the certificate, oldest first (every page)."""
    path = f"{cert_path(remote.slug)}/{cert_id}/timeline"
    with remote.client() as client:
        result = client.get(path, limit=1000)
        events = list(result["events"])
        while result.get("next_cursor"):
            result = client.get(path, limit=1000, cursor=result["next_cursor"])
            events += result["events"]
    if remote.output == Output.JSON:
        emit_json({"step": result.get("step"), "events": events})
        return
    emit_rows(remote.output, events, TIMELINE_COLUMNS)
