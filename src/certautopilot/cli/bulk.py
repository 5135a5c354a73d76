"""``certautopilot certs bulk FILE``: many certificate requests from a file, with a progress
bar on stderr, optionally waiting until every one is issued.

Each line is sent with an ``Idempotency-Key`` made from the line, the issuer and the
project, so running the same file again after an interruption (within the service's
CERTAUTOPILOT_IDEMPOTENCY_KEY_HOURS) answers the certificates already requested instead of
requesting them twice."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from certautopilot.certificates.states import CertStatus
from certautopilot.cli.certs import (
    DONE,
    LIST_COLUMNS,
    POLL_SECONDS,
    TimeoutOption,
    WaitOption,
    app,
    cert_path,
    issuer_id,
)
from certautopilot.cli.client import Client, ExitCode, Refused
from certautopilot.cli.remote import Remote, emit_rows, fail, remote_command


def parse(text: str) -> list[list[str]]:
    """One certificate a line: its common name, then more DNS names; # starts a comment."""
    lines = (line.split("#", 1)[0].split() for line in text.splitlines())
    return [names for names in lines if names]


@remote_command(app)
def bulk(
    remote: Remote,
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="One certificate a line: NAME [MORE NAMES...]; - for stdin."
        ),
    ],
    issuer: Annotated[str, typer.Option(help="The issuer's name or id.")],
    key_type: Annotated[str, typer.Option(help="As for create.")] = "ecdsa-p256",
    wait: WaitOption = False,
    timeout: TimeoutOption = 1800,
) -> None:
    """Request a certificate for each line of FILE (a progress bar on stderr)."""
    try:
        text = typer.get_text_stream("stdin").read() if file == "-" else open(file).read()  # noqa: SIM115
    except OSError as exc:
        fail(ExitCode.USAGE, f"error: FILE: {exc}")
    wanted = parse(text)
    if not wanted:
        fail(ExitCode.USAGE, "error: FILE: no names in it")
    slug = remote.slug
    refused: list[str] = []
    certs: list[dict[str, Any]] = []
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with remote.client() as client, Progress(*columns, console=console) as progress:
        iid = issuer_id(client, slug, issuer)
        task = progress.add_task("requested", total=len(wanted))
        for names in wanted:
            body = {"issuer": iid, "common_name": names[0], "sans": names[1:], "key_type": key_type}
            key = hashlib.sha256(
                f"{slug}\n{iid}\n{key_type}\n{' '.join(names)}".encode()
            ).hexdigest()
            try:
                certs.append(
                    client.json(
                        "POST", cert_path(slug), json=body, headers={"Idempotency-Key": key}
                    )
                )
            except Refused as exc:
                refused.append(f"{names[0]}: " + " ".join(line.strip() for line in exc.lines()))
            progress.advance(task)
        if wait and certs:
            certs = _wait_all(client, slug, certs, timeout, progress)
    for line in refused:
        typer.echo(f"error: {line}", err=True)
    emit_rows(remote.output, certs, LIST_COLUMNS)
    if refused:
        raise typer.Exit(int(ExitCode.REFUSED))
    if wait and any(DONE[CertStatus(c["status"])] != ExitCode.OK for c in certs):
        raise typer.Exit(int(ExitCode.FAILED))


def _wait_all(
    client: Client, slug: str, certs: list[dict[str, Any]], timeout: float, progress: Progress
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    by_id = {c["id"]: c for c in certs}
    task = progress.add_task("done", total=len(by_id))
    while True:
        pending = [i for i, c in by_id.items() if c["status"] not in DONE]
        progress.update(task, completed=len(by_id) - len(pending))
        if not pending:
            return list(by_id.values())
        if time.monotonic() >= deadline:
            fail(ExitCode.UNREACHABLE, f"error: {len(pending)} still not done after {timeout:g} s")
        time.sleep(POLL_SECONDS)
        for cid in pending:
            by_id[cid] = client.get(f"{cert_path(slug)}/{cid}")
