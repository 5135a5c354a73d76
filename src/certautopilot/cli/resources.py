"""The remote commands beside ``certs``: projects and members, issuers, zones, targets,
approval requests and the project policy, each a thin view of its API endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from certautopilot.cli.client import ExitCode
from certautopilot.cli.remote import (
    Output,
    OutputOption,
    ProjectOption,
    TokenOption,
    UrlOption,
    col,
    connect,
    emit_json,
    emit_object,
    emit_rows,
    fail,
    need_project,
    resolve,
)

projects = typer.Typer(help="Projects you are a member of.", no_args_is_help=True)
members = typer.Typer(help="A project's members and their roles.", no_args_is_help=True)
issuers = typer.Typer(help="A project's certificate authorities.", no_args_is_help=True)
zones = typer.Typer(help="A project's DNS zones.", no_args_is_help=True)
targets = typer.Typer(help="A project's distribution targets.", no_args_is_help=True)
requests = typer.Typer(help="Approval requests: list, approve, reject.", no_args_is_help=True)
policy = typer.Typer(help="The project policy (admins).", no_args_is_help=True)

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The object's id.")]


def _list(path: str, output: Output, columns: list[Any], target_args: tuple[Any, ...]) -> None:
    target = resolve(*target_args)
    slug = need_project(target)
    with connect(target) as client:
        rows = client.get(path.format(project=slug))
    if isinstance(rows, dict):
        rows = rows["items"]
    emit_rows(output, rows, columns)


def _show(path: str, output: Output, target_args: tuple[Any, ...]) -> None:
    target = resolve(*target_args)
    slug = need_project(target)
    with connect(target) as client:
        obj = client.get(path.format(project=slug))
    if output == Output.JSON:
        emit_json(obj)
    else:
        emit_object(output, obj, [col(k) for k in obj])


# -- projects -------------------------------------------------------------------------------
@projects.command("list")
def projects_list(
    url: UrlOption = None, token: TokenOption = None, output: OutputOption = Output.TABLE
) -> None:
    """Every project this token can see."""
    target = resolve(url, token)
    with connect(target) as client:
        rows = client.get("/projects")
    emit_rows(output, rows, [col("slug"), col("name"), col("id")])


@projects.command("create")
def projects_create(
    slug: Annotated[str, typer.Argument(help="Short name used in URLs, e.g. web-team.")],
    name: Annotated[str, typer.Option(help="A readable name (default: the slug).")] = "",
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Create a project; you become its admin."""
    target = resolve(url, token)
    with connect(target) as client:
        made = client.json("POST", "/projects", json={"slug": slug, "name": name or slug})
    emit_object(output, made, [col("id"), col("slug"), col("name")])


# -- members --------------------------------------------------------------------------------
@members.command("list")
def members_list(
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The project's members."""
    _list("/projects/{project}/members", output, [col("email"), col("role")], (url, token, project))


@members.command("add")
def members_add(
    email: Annotated[str, typer.Argument(help="The person's email.")],
    role: Annotated[str, typer.Option(help="admin, approver, operator or viewer.")],
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Add a member, or change a member's role."""
    target = resolve(url, token, project)
    slug = need_project(target)
    with connect(target) as client:
        row = client.json("POST", f"/projects/{slug}/members", json={"email": email, "role": role})
    emit_object(output, row, [col("email"), col("role")])


@members.command("remove")
def members_remove(
    email: Annotated[str, typer.Argument(help="The member's email.")],
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Remove a member from the project."""
    target = resolve(url, token, project)
    slug = need_project(target)
    with connect(target) as client:
        client.request("DELETE", f"/projects/{slug}/members/{email}")
    typer.echo(f"removed {email}", err=True)


# -- issuers, zones, targets ----------------------------------------------------------------
@issuers.command("list")
def issuers_list(
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The project's issuers."""
    columns = [
        col("id"),
        col("name"),
        col("kind"),
        col("status"),
        col("directory", "acme.directory_url"),
    ]
    _list("/projects/{project}/issuers", output, columns, (url, token, project))


@issuers.command("show")
def issuers_show(
    issuer_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """One issuer (secrets are never shown)."""
    _show("/projects/{project}/issuers/" + issuer_id, output, (url, token, project))


@zones.command("list")
def zones_list(
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The project's DNS zones."""
    _list("/projects/{project}/zones", output, ZONE_FIELDS, (url, token, project))


@zones.command("show")
def zones_show(
    zone_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """One zone (secrets are never shown)."""
    _show("/projects/{project}/zones/" + zone_id, output, (url, token, project))


@targets.command("list")
def targets_list(
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The project's distribution targets."""
    _list(
        "/projects/{project}/targets",
        output,
        [col("id"), col("name"), col("kind")],
        (url, token, project),
    )


# -- approval requests ----------------------------------------------------------------------
REQUEST_COLUMNS = [
    col("id"),
    col("status"),
    col("certificate", "certificate_id"),
    col("common_name", "request.common_name"),
    col("requester"),
    col("expires_at"),
]


@requests.command("list")
def requests_list(
    status: Annotated[str | None, typer.Option(help="Only this status, e.g. pending.")] = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The project's approval requests, newest first."""
    target = resolve(url, token, project)
    slug = need_project(target)
    with connect(target) as client:
        rows = client.get(f"/projects/{slug}/requests", status=status)["items"]
    emit_rows(output, rows, REQUEST_COLUMNS)


def _decide(
    verb: str, request_id: str, comment: str, target_args: tuple[Any, ...], output: Output
) -> None:
    target = resolve(*target_args)
    slug = need_project(target)
    with connect(target) as client:
        row = client.json(
            "POST", f"/projects/{slug}/requests/{request_id}/{verb}", json={"comment": comment}
        )
    emit_object(output, row, [*REQUEST_COLUMNS, col("decided_by"), col("comment")])


CommentOption = Annotated[str, typer.Option(help="Why (kept with the decision).")]


@requests.command("approve")
def requests_approve(
    request_id: IdArgument,
    comment: CommentOption = "",
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Approve a pending request: the certificate is issued."""
    _decide("approve", request_id, comment, (url, token, project), output)


@requests.command("reject")
def requests_reject(
    request_id: IdArgument,
    comment: CommentOption = "",
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Reject a pending request: the certificate is not issued."""
    _decide("reject", request_id, comment, (url, token, project), output)


# -- policy ---------------------------------------------------------------------------------
@policy.command("show")
def policy_show(
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The policy's rules (-o json: the form policy set takes)."""
    target = resolve(url, token, project)
    slug = need_project(target)
    with connect(target) as client:
        _emit_policy(output, client.get(f"/projects/{slug}/policy"))


def _emit_policy(output: Output, body: dict[str, Any]) -> None:
    if output == Output.JSON:
        emit_json(body)
        return
    rules = body["rules"]
    emit_object(output, rules, [col(k) for k in rules])
    typer.echo(f"updated by {body.get('updated_by') or '-'} at {body.get('updated_at') or '-'}")


@policy.command("set")
def policy_set(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="A JSON file of rules (policy show's rules), or - for stdin."
        ),
    ],
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Replace the policy's rules with those in FILE."""
    text = typer.get_text_stream("stdin").read() if file == "-" else _read(file)
    try:
        rules = json.loads(text)
    except ValueError as exc:
        fail(ExitCode.USAGE, f"error: FILE: not JSON: {exc}")
    if isinstance(rules, dict) and "rules" in rules:
        rules = rules["rules"]  # the whole output of policy show
    target = resolve(url, token, project)
    slug = need_project(target)
    with connect(target) as client:
        _emit_policy(output, client.json("PUT", f"/projects/{slug}/policy", json=rules))


def _read(file: str) -> str:
    try:
        return Path(file).read_text()
    except OSError as exc:
        fail(ExitCode.USAGE, f"error: FILE: {exc}")


# -- your API tokens ------------------------------------------------------------------------
tokens = typer.Typer(help="Your own API tokens: list, create, revoke.", no_args_is_help=True)
TOKEN_COLUMNS = [
    col("id"),
    col("name"),
    col("prefix"),
    col("project"),
    col("role"),
    col("created_at"),
    col("expires_at"),
    col("expired"),
]


@tokens.command("list")
def tokens_list(
    url: UrlOption = None, token: TokenOption = None, output: OutputOption = Output.TABLE
) -> None:
    """Your tokens (only their first characters: the tokens themselves are never shown)."""
    with connect(resolve(url, token)) as client:
        rows = client.get("/tokens")
    emit_rows(output, rows, TOKEN_COLUMNS)


@tokens.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="What uses it, e.g. the backup script.")],
    expires_in_days: Annotated[
        int, typer.Option("--expires-in-days", min=1, max=3650, help="Days until it ends.")
    ] = 90,
    never_expires: Annotated[
        bool, typer.Option("--never-expires", help="No expiry (instead of the 90 days).")
    ] = False,
    only_project: Annotated[
        str | None,
        typer.Option("--only-project", help="Limit it to this project (slug)."),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="At most this role: viewer, operator, approver or admin."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """A new token for you: printed once, alone on stdout (with -o json: in the object)."""
    body = {
        "name": name,
        "expires_in_days": None if never_expires else expires_in_days,
        "project": only_project,
        "role": role,
    }
    with connect(resolve(url, token)) as client:
        made = client.json("POST", "/tokens", json=body)
    if output == Output.JSON:
        emit_json(made)
    else:
        typer.echo(made["token"])


@tokens.command("revoke")
def tokens_revoke(token_id: IdArgument, url: UrlOption = None, token: TokenOption = None) -> None:
    """Revoke one of your tokens; it stops working at once."""
    with connect(resolve(url, token)) as client:
        client.request("DELETE", f"/tokens/{token_id}")
    typer.echo(f"revoked {token_id}", err=True)


# -- creating and changing issuers, zones and targets ---------------------------------------
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="A setting (repeat for more). Dotted keys reach into objects, e.g."
        " acme.directory_url=https://ca/dir; a VALUE that is JSON (true, 120, [..]) is read as"
        " JSON, anything else as text.",
    ),
]
SecretOption = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        metavar="KEY=FILE",
        help="A secret setting read from FILE (- for stdin), never from the command line,"
        " e.g. rfc2136.tsig_secret=tsig.key. It is never printed.",
    ),
]
FromFileOption = Annotated[
    str | None,
    typer.Option(
        "--from-file",
        metavar="FILE",
        help="A JSON file of the whole body (- for stdin); --set and --secret apply on top.",
    ),
]


def _put(body: dict[str, Any], key: str, value: Any, option: str) -> None:
    parts = key.split(".")
    if not all(parts):
        fail(ExitCode.USAGE, f"error: {option}: {key!r} is not a KEY")
    node = body
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            fail(ExitCode.USAGE, f"error: {option}: {part!r} is not an object")
        node = child
    node[parts[-1]] = value


def _pair(item: str, option: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        fail(ExitCode.USAGE, f"error: {option}: {item!r} is not KEY=VALUE")
    return key.strip(), value


def build_body(
    sets: list[str] | None, secrets: list[str] | None, from_file: str | None
) -> dict[str, Any]:
    """The request body: the file's JSON, then each --set, then each --secret (read from its
    file, a trailing newline dropped). Bad input is a usage error (exit code 2)."""
    body: dict[str, Any] = {}
    if from_file is not None:
        text = typer.get_text_stream("stdin").read() if from_file == "-" else _read(from_file)
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            fail(ExitCode.USAGE, f"error: --from-file: not JSON: {exc}")
        if not isinstance(loaded, dict):
            fail(ExitCode.USAGE, "error: --from-file: not a JSON object")
        body = loaded
    for item in sets or []:
        key, raw = _pair(item, "--set")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        _put(body, key, value, "--set")
    for item in secrets or []:
        key, file = _pair(item, "--secret")
        if file == "-":
            secret = typer.get_text_stream("stdin").read()
        else:
            try:
                secret = Path(file).read_text()
            except OSError as exc:
                fail(ExitCode.USAGE, f"error: --secret {key}: {exc}")
        _put(body, key, secret.rstrip("\r\n"), "--secret")
    return body


def _send(
    method: str,
    path: str,
    body: dict[str, Any] | None,
    output: Output,
    fields: list[Any] | None,
    target_args: tuple[Any, ...],
) -> None:
    target = resolve(*target_args)
    slug = need_project(target)
    with connect(target) as client:
        obj = client.json(method, path.format(project=slug), json=body)
    if obj is None:
        return
    emit_object(output, obj, fields or [col(k) for k in obj])


def _delete(path: str, what: str, target_args: tuple[Any, ...]) -> None:
    target = resolve(*target_args)
    slug = need_project(target)
    with connect(target) as client:
        client.request("DELETE", path.format(project=slug))
    typer.echo(f"deleted {what}", err=True)


def _test(path: str, output: Output, target_args: tuple[Any, ...]) -> None:
    """A test endpoint's ``{"ok", "steps"}``: each step on a line; exit code 1 when not ok."""
    target = resolve(*target_args)
    slug = need_project(target)
    with connect(target) as client:
        result = client.json("POST", path.format(project=slug))
    if output == Output.JSON:
        emit_json(result)
    else:
        emit_rows(output, result.get("steps", []), [col("step"), col("ok"), col("detail")])
        typer.echo("ok" if result.get("ok") else "FAILED", err=True)
    if not result.get("ok"):
        raise typer.Exit(int(ExitCode.REFUSED))


ISSUER_FIELDS = [col("id"), col("name"), col("kind"), col("status"), col("acme")]
ZONE_FIELDS = [col("id"), col("name"), col("provider"), col("enabled"), col("nameservers")]


@issuers.command("create")
def issuers_create(
    name: Annotated[str, typer.Argument(help="The issuer's name, e.g. letsencrypt.")],
    kind: Annotated[str, typer.Option(help="acme, adcs, or an issuer plugin's name.")] = "acme",
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Create an issuer, e.g. --set acme.directory_url=URL --set acme.contact_email=E
    --set acme.terms_agreed=true (an ACME account is registered at once)."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("kind", kind)
    _send("POST", "/projects/{project}/issuers", body, output, None, (url, token, project))


@issuers.command("edit")
def issuers_edit(
    issuer_id: IdArgument,
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Change an issuer's settings (only those given)."""
    body = build_body(set_, secret, from_file)
    path = "/projects/{project}/issuers/" + issuer_id
    _send("PATCH", path, body, output, None, (url, token, project))


@issuers.command("delete")
def issuers_delete(
    issuer_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete an issuer and its stored account key and secrets (refused, naming them, while
    certificates or the policy's fallback issuers use it: disable it instead)."""
    _delete("/projects/{project}/issuers/" + issuer_id, issuer_id, (url, token, project))


@issuers.command("test")
def issuers_test(
    issuer_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Reach the CA with the stored settings, step by step, ordering nothing (ACME: the
    directory, then the account; AD CS: sign-in, templates, CA chain); exit code 1 when a
    step fails."""
    _test("/projects/{project}/issuers/" + issuer_id + "/test", output, (url, token, project))


def _switch(kind: str, item_id: str, enabled: bool, output: Output, args: tuple[Any, ...]) -> None:
    path = f"/projects/{{project}}/{kind}/{item_id}"
    fields = {"issuers": ISSUER_FIELDS, "zones": ZONE_FIELDS}.get(
        kind, [col("id"), col("name"), col("enabled")]
    )
    _send("PATCH", path, {"enabled": enabled}, output, fields, args)


@issuers.command("enable")
def issuers_enable(
    issuer_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Let a disabled issuer take new requests, renewals and fallbacks again."""
    _switch("issuers", issuer_id, True, output, (url, token, project))


@issuers.command("disable")
def issuers_disable(
    issuer_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Stop new requests, renewals and fallbacks through an issuer, keeping its account and
    settings (its certificates are warned about before they expire)."""
    _switch("issuers", issuer_id, False, output, (url, token, project))


@zones.command("create")
def zones_create(
    name: Annotated[str, typer.Argument(help="The zone, e.g. example.com.")],
    provider: Annotated[
        str, typer.Option(help="manual, rfc2136, or a DNS provider plugin's name.")
    ] = "manual",
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Create a DNS zone, e.g. --provider rfc2136 --set rfc2136.server=10.0.0.53
    --secret rfc2136.tsig_secret=tsig.key."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("provider", provider)
    _send("POST", "/projects/{project}/zones", body, output, ZONE_FIELDS, (url, token, project))


@zones.command("edit")
def zones_edit(
    zone_id: IdArgument,
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Change a zone's settings (only those given)."""
    body = build_body(set_, secret, from_file)
    path = "/projects/{project}/zones/" + zone_id
    _send("PATCH", path, body, output, ZONE_FIELDS, (url, token, project))


@zones.command("delete")
def zones_delete(
    zone_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a zone (refused while certificates use it)."""
    _delete("/projects/{project}/zones/" + zone_id, zone_id, (url, token, project))


@zones.command("test")
def zones_test(
    zone_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Write, read back on each authoritative server and remove a probe TXT record
    (exit code 1 when a step fails)."""
    _test("/projects/{project}/zones/" + zone_id + "/test", output, (url, token, project))


@zones.command("enable")
def zones_enable(
    zone_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Write DNS-01 records in a disabled zone again (renewals that waited start within
    the hour)."""
    _switch("zones", zone_id, True, output, (url, token, project))


@zones.command("disable")
def zones_disable(
    zone_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Write nothing in a zone, keeping its settings and its certificates (new requests
    for its names are refused; their renewals wait, and their timeline says so)."""
    _switch("zones", zone_id, False, output, (url, token, project))


@targets.command("show")
def targets_show(
    target_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """One distribution target (secrets are never shown)."""
    _show("/projects/{project}/targets/" + target_id, output, (url, token, project))


@targets.command("create")
def targets_create(
    name: Annotated[str, typer.Argument(help="The target's name, e.g. web-1.")],
    kind: Annotated[str, typer.Option(help="A target kind, e.g. nginx (see plugins).")],
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Create a distribution target; --set gives its settings."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("kind", kind)
    _send("POST", "/projects/{project}/targets", body, output, None, (url, token, project))


@targets.command("edit")
def targets_edit(
    target_id: IdArgument,
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Change a target's settings (only those given)."""
    body = build_body(set_, secret, from_file)
    path = "/projects/{project}/targets/" + target_id
    _send("PATCH", path, body, output, None, (url, token, project))


@targets.command("delete")
def targets_delete(
    target_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a distribution target (refused, naming them, while certificates are attached
    to it: detach it or disable it instead)."""
    _delete("/projects/{project}/targets/" + target_id, target_id, (url, token, project))


@targets.command("test")
def targets_test(
    target_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Run the target's own check (connect, credentials, permissions) without deploying
    anything; each step on a line (exit code 1 when a step fails)."""
    _test("/projects/{project}/targets/" + target_id + "/test", output, (url, token, project))


@targets.command("enable")
def targets_enable(
    target_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Deploy new versions to a disabled target again."""
    _switch("targets", target_id, True, output, (url, token, project))


@targets.command("disable")
def targets_disable(
    target_id: IdArgument,
    project: ProjectOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Deploy nothing to a target, keeping its settings and its certificates (new versions
    skip it, and their timeline says so)."""
    _switch("targets", target_id, False, output, (url, token, project))
