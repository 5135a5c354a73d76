"""``certautopilot certs`` beyond issuing: where a certificate is deployed (targets, attach,
detach, deploy, deployments), its versions and their downloads, preflight, the CA check of
an AD CS request, the dns-persist-01 record, and the renewal backlog. Each command is a
thin view of one API endpoint (README, "Command line")."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from certautopilot.cli.certs import SHOW_FIELDS, CertIdArgument, app, cert_path, issuer_id
from certautopilot.cli.client import Client, ExitCode
from certautopilot.cli.remote import (
    Output,
    Remote,
    col,
    emit_json,
    emit_object,
    emit_rows,
    remote_command,
)

TARGET_COLUMNS = [col("id"), col("name"), col("kind"), col("enabled")]
DEPLOYMENT_COLUMNS = [
    col("target", "target.name"),
    col("version"),
    col("serial"),
    col("status"),
    col("attempts"),
    col("error", "error.detail"),
    col("created_at"),
]
VERSION_COLUMNS = [
    col("seq"),
    col("current"),
    col("status"),
    col("reason"),
    col("serial"),
    col("not_after"),
    col("revoked_at"),
]
TargetArgument = Annotated[
    list[str], typer.Argument(metavar="TARGET...", help="Target ids or names.")
]


def _target_ids(remote: Remote, client: Client, given: list[str]) -> list[str]:
    """Target ids from ids or names (names are what people remember); an unknown one is a
    usage error naming the project's targets."""
    known = client.get(remote.path("/projects/{project}/targets"))
    out = []
    for wanted in given:
        found = next((t["id"] for t in known if wanted in (t["id"], t["name"])), None)
        if found is None:
            names = ", ".join(sorted(t["name"] for t in known)) or "none"
            typer.echo(f"error: no target {wanted!r} (targets: {names})", err=True)
            raise typer.Exit(int(ExitCode.USAGE))
        out.append(str(found))
    return out


def _attached(remote: Remote, cert_id: str) -> str:
    return f"{cert_path(remote.slug)}/{cert_id}/targets"


@remote_command(app, "targets")
def targets(remote: Remote, cert_id: CertIdArgument) -> None:
    """The distribution targets attached to a certificate (each new version goes to them)."""
    with remote.client() as client:
        rows = client.get(_attached(remote, cert_id))
    emit_rows(remote.output, rows, TARGET_COLUMNS)


def _change_targets(remote: Remote, cert_id: str, given: list[str], attach: bool) -> None:
    with remote.client() as client:
        path = _attached(remote, cert_id)
        current = [str(t["id"]) for t in client.get(path)]
        ids = _target_ids(remote, client, given)
        wanted = (
            current + [i for i in ids if i not in current]
            if attach
            else [i for i in current if i not in ids]
        )
        rows = client.json("PUT", path, json={"targets": wanted})
    emit_rows(remote.output, rows, TARGET_COLUMNS)


@remote_command(app, "attach")
def attach(remote: Remote, cert_id: CertIdArgument, target: TargetArgument) -> None:
    """Attach targets to a certificate (kept: those attached already); prints the set."""
    _change_targets(remote, cert_id, target, attach=True)


@remote_command(app, "detach")
def detach(remote: Remote, cert_id: CertIdArgument, target: TargetArgument) -> None:
    """Detach targets from a certificate; prints the targets still attached."""
    _change_targets(remote, cert_id, target, attach=False)


@remote_command(app, "deploy")
def deploy(
    remote: Remote,
    cert_id: CertIdArgument,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target", metavar="TARGET", help="Only this attached target (repeat for more)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Check each target and say what would change; write nothing."
        ),
    ] = False,
) -> None:
    """Deploy the current version to its attached targets now (or --target ones); with
    --dry-run, each target's checks and what it would do (exit code 1 when one fails)."""
    with remote.client() as client:
        ids = _target_ids(remote, client, target) if target else None
        path = f"{cert_path(remote.slug)}/{cert_id}/deploy"
        result = client.json("POST", path, json={"targets": ids, "dry_run": dry_run})
    if remote.output == Output.JSON:
        emit_json(result)
    elif dry_run:
        columns = [col("target", "target.name"), col("ok"), col("would"), col("checks")]
        emit_rows(remote.output, result["results"], columns)
    else:
        emit_rows(remote.output, result["deployments"], DEPLOYMENT_COLUMNS)
    if dry_run and not all(r["ok"] for r in result["results"]):
        raise typer.Exit(int(ExitCode.REFUSED))


@remote_command(app, "deployments")
def deployments(
    remote: Remote,
    cert_id: CertIdArgument,
    history: Annotated[
        int,
        typer.Option("--history", min=0, max=1000, help="The last N deployments instead."),
    ] = 0,
) -> None:
    """Each attached target's latest deployment (--history N: the last N, newest first)."""
    with remote.client() as client:
        path = f"{cert_path(remote.slug)}/{cert_id}/deployments"
        result = client.get(path, history=history)
    if remote.output == Output.JSON:
        emit_json(result)
        return
    if history:
        emit_rows(remote.output, result["history"], DEPLOYMENT_COLUMNS)
        return
    rows = [{**(item["latest"] or {}), "target": item["target"]} for item in result["items"]]
    emit_rows(remote.output, rows, DEPLOYMENT_COLUMNS)


@remote_command(app, "versions")
def versions(remote: Remote, cert_id: CertIdArgument) -> None:
    """Every version of a certificate, newest first (download one: download --version N)."""
    with remote.client() as client:
        rows = client.get(f"{cert_path(remote.slug)}/{cert_id}/versions")
    emit_rows(remote.output, rows, VERSION_COLUMNS)


@remote_command(app, "check-ca")
def check_ca(remote: Remote, cert_id: CertIdArgument) -> None:
    """Ask the CA now whether a request it holds for approval (AD CS) was decided."""
    with remote.client() as client:
        cert = client.json("POST", f"{cert_path(remote.slug)}/{cert_id}/check-ca")
    emit_object(remote.output, cert, SHOW_FIELDS)


@remote_command(app, "persist-record")
def persist_record(remote: Remote, cert_id: CertIdArgument) -> None:
    """The dns-persist-01 record(s) to publish once for a manual zone that renews."""
    with remote.client() as client:
        result = client.get(f"{cert_path(remote.slug)}/{cert_id}/persist-record")
    if remote.output == Output.JSON:
        emit_json(result)
        return
    columns = [col("name"), col("record_name"), col("value"), col("status")]
    emit_rows(remote.output, result["items"], columns)


@remote_command(app, "preflight")
def preflight(
    remote: Remote,
    common_name: Annotated[str, typer.Argument(metavar="NAME", help="The common name.")],
    issuer: Annotated[str, typer.Option(help="The issuer's name or id.")],
    san: Annotated[
        list[str] | None,
        typer.Option("--san", metavar="NAME", help="Another DNS name (repeat for more)."),
    ] = None,
    key_type: Annotated[str, typer.Option(help="As for create.")] = "ecdsa-p256",
) -> None:
    """What create would do, requesting nothing: policy warnings and where each name's
    DNS-01 record would go (exit code 1 when there is a warning)."""
    with remote.client() as client:
        body = {
            "issuer": issuer_id(client, remote.slug, issuer),
            "common_name": common_name,
            "sans": san or [],
            "key_type": key_type,
        }
        result: dict[str, Any] = client.json(
            "POST", f"{cert_path(remote.slug)}/preflight", json=body
        )
    if remote.output == Output.JSON:
        emit_json(result)
    else:
        emit_rows(
            remote.output, result["challenges"], [col("name"), col("zone"), col("record_name")]
        )
        for w in result["warnings"]:
            typer.echo(f"warning: {w['field']}: {w['message']} ({w['code']})", err=True)
    if result["warnings"]:
        raise typer.Exit(int(ExitCode.REFUSED))


@remote_command(app, "backlog")
def backlog(remote: Remote) -> None:
    """The project's renewal backlog: certificates due and waiting, and why."""
    with remote.client() as client:
        result = client.get(remote.path("/projects/{project}/renewals/backlog"))
    if remote.output == Output.JSON:
        emit_json(result)
        return
    emit_object(remote.output, result, [col("waiting"), col("renewing"), col("clears_at")])
    columns = [col("issuer"), col("due"), col("deferred"), col("renewing"), col("clears_at")]
    emit_rows(remote.output, result["issuers"], columns)
