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
    Remote,
    col,
    emit_json,
    emit_object,
    emit_rows,
    fail,
    remote_command,
)

projects = typer.Typer(help="Projects you are a member of.", no_args_is_help=True)
members = typer.Typer(help="A project's members and their roles.", no_args_is_help=True)
issuers = typer.Typer(help="A project's certificate authorities.", no_args_is_help=True)
zones = typer.Typer(help="A project's DNS zones.", no_args_is_help=True)
targets = typer.Typer(help="A project's distribution targets.", no_args_is_help=True)
requests = typer.Typer(help="Approval requests: list, approve, reject.", no_args_is_help=True)
policy = typer.Typer(help="The project policy (admins).", no_args_is_help=True)

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The object's id.")]


def _list(remote: Remote, path: str, columns: list[Any]) -> None:
    with remote.client() as client:
        rows = client.get(remote.path(path))
    if isinstance(rows, dict):
        rows = rows["items"]
    emit_rows(remote.output, rows, columns)


def _show(remote: Remote, path: str) -> None:
    with remote.client() as client:
        obj = client.get(remote.path(path))
    if remote.output == Output.JSON:
        emit_json(obj)
    else:
        emit_object(remote.output, obj, [col(k) for k in obj])


# -- projects -------------------------------------------------------------------------------
@remote_command(projects, "list", in_project=False)
def projects_list(remote: Remote) -> None:
    """Every project this token can see."""
    with remote.client() as client:
        rows = client.get("/projects")
    emit_rows(remote.output, rows, [col("slug"), col("name"), col("id")])


@remote_command(projects, "create", in_project=False)
def projects_create(
    remote: Remote,
    slug: Annotated[str, typer.Argument(help="Short name used in URLs, e.g. web-team.")],
    name: Annotated[str, typer.Option(help="A readable name (default: the slug).")] = "",
) -> None:
    """Create a project; you become its admin."""
    with remote.client() as client:
        made = client.json("POST", "/projects", json={"slug": slug, "name": name or slug})
    emit_object(remote.output, made, [col("id"), col("slug"), col("name")])


# -- members --------------------------------------------------------------------------------
@remote_command(members, "list")
def members_list(remote: Remote) -> None:
    """The project's members."""
    _list(remote, "/projects/{project}/members", [col("email"), col("role")])


@remote_command(members, "add")
def members_add(
    remote: Remote,
    email: Annotated[str, typer.Argument(help="The person's email.")],
    role: Annotated[str, typer.Option(help="admin, approver, operator or viewer.")],
) -> None:
    """Add a member, or change a member's role."""
    slug = remote.slug
    with remote.client() as client:
        row = client.json("POST", f"/projects/{slug}/members", json={"email": email, "role": role})
    emit_object(remote.output, row, [col("email"), col("role")])


@remote_command(members, "remove", prints=False)
def members_remove(
    remote: Remote,
    email: Annotated[str, typer.Argument(help="The member's email.")],
) -> None:
    """Remove a member from the project."""
    slug = remote.slug
    with remote.client() as client:
        client.request("DELETE", f"/projects/{slug}/members/{email}")
    typer.echo(f"removed {email}", err=True)


# -- issuers, zones, targets ----------------------------------------------------------------
@remote_command(issuers, "list")
def issuers_list(remote: Remote) -> None:
    """The project's issuers."""
    columns = [
        col("id"),
        col("name"),
        col("kind"),
        col("status"),
        col("directory", "acme.directory_url"),
    ]
    _list(remote, "/projects/{project}/issuers", columns)


@remote_command(issuers, "show")
def issuers_show(remote: Remote, issuer_id: IdArgument) -> None:
    """One issuer (secrets are never shown)."""
    _show(remote, "/projects/{project}/issuers/" + issuer_id)


@remote_command(zones, "list")
def zones_list(remote: Remote) -> None:
    """The project's DNS zones."""
    _list(remote, "/projects/{project}/zones", ZONE_FIELDS)


@remote_command(zones, "show")
def zones_show(remote: Remote, zone_id: IdArgument) -> None:
    """One zone (secrets are never shown)."""
    _show(remote, "/projects/{project}/zones/" + zone_id)


@remote_command(issuers, "profiles")
def issuers_profiles(remote: Remote, issuer_id: IdArgument) -> None:
    """The certificate profiles the issuer's CA advertises now (none for most CAs)."""
    with remote.client() as client:
        result = client.get(remote.path("/projects/{project}/issuers/" + issuer_id + "/profiles"))
    if remote.output == Output.JSON:
        emit_json(result)
    else:
        emit_rows(remote.output, result["profiles"], [col("name"), col("description")])


@remote_command(zones, "suggest")
def zones_suggest(
    remote: Remote,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A DNS name, e.g. www.example.com.")],
) -> None:
    """The project zone that holds NAME, or the zone apex to add (found by SOA records)."""
    with remote.client() as client:
        found = client.get(remote.path("/projects/{project}/zones/suggest"), name=name)
    emit_object(remote.output, found, [col("name"), col("zone"), col("apex"), col("detail")])


@remote_command(zones, "caa")
def zones_caa(remote: Remote, zone_id: IdArgument) -> None:
    """The CAA records that govern a zone, whether each ACME issuer of the project is
    allowed, and the records that would allow them all."""
    with remote.client() as client:
        report = client.get(remote.path("/projects/{project}/zones/" + zone_id + "/caa"))
    if remote.output == Output.JSON:
        emit_json(report)
        return
    emit_object(remote.output, report, [col("zone"), col("found_at"), col("records"), col("error")])
    columns = [col("issuer"), col("caa_identity"), col("allowed"), col("detail")]
    emit_rows(remote.output, report["issuers"], columns)
    for line in report["suggested"]:
        typer.echo(line)


@remote_command(targets, "list")
def targets_list(remote: Remote) -> None:
    """The project's distribution targets."""
    _list(remote, "/projects/{project}/targets", [col("id"), col("name"), col("kind")])


# -- approval requests ----------------------------------------------------------------------
REQUEST_COLUMNS = [
    col("id"),
    col("status"),
    col("certificate", "certificate_id"),
    col("common_name", "request.common_name"),
    col("requester"),
    col("expires_at"),
]


@remote_command(requests, "list")
def requests_list(
    remote: Remote,
    status: Annotated[str | None, typer.Option(help="Only this status, e.g. pending.")] = None,
) -> None:
    """The project's approval requests, newest first."""
    slug = remote.slug
    with remote.client() as client:
        rows = client.get(f"/projects/{slug}/requests", status=status)["items"]
    emit_rows(remote.output, rows, REQUEST_COLUMNS)


def _decide(remote: Remote, verb: str, request_id: str, comment: str) -> None:
    slug = remote.slug
    with remote.client() as client:
        row = client.json(
            "POST", f"/projects/{slug}/requests/{request_id}/{verb}", json={"comment": comment}
        )
    emit_object(remote.output, row, [*REQUEST_COLUMNS, col("decided_by"), col("comment")])


CommentOption = Annotated[str, typer.Option(help="Why (kept with the decision).")]


@remote_command(requests, "approve")
def requests_approve(
    remote: Remote,
    request_id: IdArgument,
    comment: CommentOption = "",
) -> None:
    """Approve a pending request: the certificate is issued."""
    _decide(remote, "approve", request_id, comment)


@remote_command(requests, "reject")
def requests_reject(
    remote: Remote,
    request_id: IdArgument,
    comment: CommentOption = "",
) -> None:
    """Reject a pending request: the certificate is not issued."""
    _decide(remote, "reject", request_id, comment)


# -- policy ---------------------------------------------------------------------------------
@remote_command(policy, "show")
def policy_show(remote: Remote) -> None:
    """The policy's rules (-o json: the form policy set takes)."""
    slug = remote.slug
    with remote.client() as client:
        _emit_policy(remote, client.get(f"/projects/{slug}/policy"))


def _emit_policy(remote: Remote, body: dict[str, Any]) -> None:
    if remote.output == Output.JSON:
        emit_json(body)
        return
    rules = body["rules"]
    emit_object(remote.output, rules, [col(k) for k in rules])
    typer.echo(f"updated by {body.get('updated_by') or '-'} at {body.get('updated_at') or '-'}")


@remote_command(policy, "set")
def policy_set(
    remote: Remote,
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="A JSON file of rules (policy show's rules), or - for stdin."
        ),
    ],
) -> None:
    """Replace the policy's rules with those in FILE."""
    text = typer.get_text_stream("stdin").read() if file == "-" else _read(file)
    try:
        rules = json.loads(text)
    except ValueError as exc:
        fail(ExitCode.USAGE, f"error: FILE: not JSON: {exc}")
    if isinstance(rules, dict) and "rules" in rules:
        rules = rules["rules"]  # the whole output of policy show
    slug = remote.slug
    with remote.client() as client:
        _emit_policy(remote, client.json("PUT", f"/projects/{slug}/policy", json=rules))


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


@remote_command(tokens, "list", in_project=False)
def tokens_list(remote: Remote) -> None:
    """Your tokens (only their first characters: the tokens themselves are never shown)."""
    with remote.client() as client:
        rows = client.get("/tokens")
    emit_rows(remote.output, rows, TOKEN_COLUMNS)


@remote_command(tokens, "create", in_project=False)
def tokens_create(
    remote: Remote,
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
) -> None:
    """A new token for you: printed once, alone on stdout (with -o json: in the object)."""
    body = {
        "name": name,
        "expires_in_days": None if never_expires else expires_in_days,
        "project": only_project,
        "role": role,
    }
    with remote.client() as client:
        made = client.json("POST", "/tokens", json=body)
    if remote.output == Output.JSON:
        emit_json(made)
    else:
        typer.echo(made["token"])


@remote_command(tokens, "revoke", in_project=False, prints=False)
def tokens_revoke(remote: Remote, token_id: IdArgument) -> None:
    """Revoke one of your tokens; it stops working at once."""
    with remote.client() as client:
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
    remote: Remote,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    fields: list[Any] | None,
) -> None:
    with remote.client() as client:
        obj = client.json(method, remote.path(path), json=body)
    if obj is None:
        return
    emit_object(remote.output, obj, fields or [col(k) for k in obj])


def _delete(remote: Remote, path: str, what: str) -> None:
    with remote.client() as client:
        client.request("DELETE", remote.path(path))
    typer.echo(f"deleted {what}", err=True)


def _test(remote: Remote, path: str) -> None:
    """A test endpoint's ``{"ok", "steps"}``: each step on a line; exit code 1 when not ok."""
    with remote.client() as client:
        result = client.json("POST", remote.path(path))
    if remote.output == Output.JSON:
        emit_json(result)
    else:
        emit_rows(remote.output, result.get("steps", []), [col("step"), col("ok"), col("detail")])
        typer.echo("ok" if result.get("ok") else "FAILED", err=True)
    if not result.get("ok"):
        raise typer.Exit(int(ExitCode.REFUSED))


ISSUER_FIELDS = [col("id"), col("name"), col("kind"), col("status"), col("acme")]
ZONE_FIELDS = [col("id"), col("name"), col("provider"), col("enabled"), col("nameservers")]


@remote_command(issuers, "create")
def issuers_create(
    remote: Remote,
    name: Annotated[str, typer.Argument(help="The issuer's name, e.g. letsencrypt.")],
    kind: Annotated[str, typer.Option(help="acme, adcs, or an issuer plugin's name.")] = "acme",
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Create an issuer, e.g. --set acme.directory_url=URL --set acme.contact_email=E
    --set acme.terms_agreed=true (an ACME account is registered at once)."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("kind", kind)
    _send(remote, "POST", "/projects/{project}/issuers", body, None)


@remote_command(issuers, "edit")
def issuers_edit(
    remote: Remote,
    issuer_id: IdArgument,
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Change an issuer's settings (only those given)."""
    body = build_body(set_, secret, from_file)
    path = "/projects/{project}/issuers/" + issuer_id
    _send(remote, "PATCH", path, body, None)


@remote_command(issuers, "delete", prints=False)
def issuers_delete(remote: Remote, issuer_id: IdArgument) -> None:
    """Delete an issuer and its stored account key and secrets (refused, naming them, while
    certificates or the policy's fallback issuers use it: disable it instead)."""
    _delete(remote, "/projects/{project}/issuers/" + issuer_id, issuer_id)


@remote_command(issuers, "test")
def issuers_test(remote: Remote, issuer_id: IdArgument) -> None:
    """Reach the CA with the stored settings, step by step, ordering nothing (ACME: the
    directory, then the account; AD CS: sign-in, templates, CA chain); exit code 1 when a
    step fails."""
    _test(remote, "/projects/{project}/issuers/" + issuer_id + "/test")


def _switch(remote: Remote, kind: str, item_id: str, enabled: bool) -> None:
    path = f"/projects/{{project}}/{kind}/{item_id}"
    fields = {"issuers": ISSUER_FIELDS, "zones": ZONE_FIELDS}.get(
        kind, [col("id"), col("name"), col("enabled")]
    )
    _send(remote, "PATCH", path, {"enabled": enabled}, fields)


@remote_command(issuers, "enable")
def issuers_enable(remote: Remote, issuer_id: IdArgument) -> None:
    """Let a disabled issuer take new requests, renewals and fallbacks again."""
    _switch(remote, "issuers", issuer_id, True)


@remote_command(issuers, "disable")
def issuers_disable(remote: Remote, issuer_id: IdArgument) -> None:
    """Stop new requests, renewals and fallbacks through an issuer, keeping its account and
    settings (its certificates are warned about before they expire)."""
    _switch(remote, "issuers", issuer_id, False)


@remote_command(zones, "create")
def zones_create(
    remote: Remote,
    name: Annotated[str, typer.Argument(help="The zone, e.g. example.com.")],
    provider: Annotated[
        str, typer.Option(help="manual, rfc2136, or a DNS provider plugin's name.")
    ] = "manual",
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Create a DNS zone, e.g. --provider rfc2136 --set rfc2136.server=10.0.0.53
    --secret rfc2136.tsig_secret=tsig.key."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("provider", provider)
    _send(remote, "POST", "/projects/{project}/zones", body, ZONE_FIELDS)


@remote_command(zones, "edit")
def zones_edit(
    remote: Remote,
    zone_id: IdArgument,
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Change a zone's settings (only those given)."""
    body = build_body(set_, secret, from_file)
    path = "/projects/{project}/zones/" + zone_id
    _send(remote, "PATCH", path, body, ZONE_FIELDS)


@remote_command(zones, "delete", prints=False)
def zones_delete(remote: Remote, zone_id: IdArgument) -> None:
    """Delete a zone (refused while certificates use it)."""
    _delete(remote, "/projects/{project}/zones/" + zone_id, zone_id)


@remote_command(zones, "test")
def zones_test(remote: Remote, zone_id: IdArgument) -> None:
    """Write, read back on each authoritative server and remove a probe TXT record
    (exit code 1 when a step fails)."""
    _test(remote, "/projects/{project}/zones/" + zone_id + "/test")


@remote_command(zones, "enable")
def zones_enable(remote: Remote, zone_id: IdArgument) -> None:
    """Write DNS-01 records in a disabled zone again (renewals that waited start within
    the hour)."""
    _switch(remote, "zones", zone_id, True)


@remote_command(zones, "disable")
def zones_disable(remote: Remote, zone_id: IdArgument) -> None:
    """Write nothing in a zone, keeping its settings and its certificates (new requests
    for its names are refused; their renewals wait, and their timeline says so)."""
    _switch(remote, "zones", zone_id, False)


@remote_command(targets, "show")
def targets_show(remote: Remote, target_id: IdArgument) -> None:
    """One distribution target (secrets are never shown)."""
    _show(remote, "/projects/{project}/targets/" + target_id)


@remote_command(targets, "create")
def targets_create(
    remote: Remote,
    name: Annotated[str, typer.Argument(help="The target's name, e.g. web-1.")],
    kind: Annotated[str, typer.Option(help="A target kind, e.g. nginx (see plugins).")],
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Create a distribution target; --set gives its settings."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("kind", kind)
    _send(remote, "POST", "/projects/{project}/targets", body, None)


@remote_command(targets, "edit")
def targets_edit(
    remote: Remote,
    target_id: IdArgument,
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Change a target's settings (only those given)."""
    body = build_body(set_, secret, from_file)
    path = "/projects/{project}/targets/" + target_id
    _send(remote, "PATCH", path, body, None)


@remote_command(targets, "delete", prints=False)
def targets_delete(remote: Remote, target_id: IdArgument) -> None:
    """Delete a distribution target (refused, naming them, while certificates are attached
    to it: detach it or disable it instead)."""
    _delete(remote, "/projects/{project}/targets/" + target_id, target_id)


@remote_command(targets, "test")
def targets_test(remote: Remote, target_id: IdArgument) -> None:
    """Run the target's own check (connect, credentials, permissions) without deploying
    anything; each step on a line (exit code 1 when a step fails)."""
    _test(remote, "/projects/{project}/targets/" + target_id + "/test")


@remote_command(targets, "enable")
def targets_enable(remote: Remote, target_id: IdArgument) -> None:
    """Deploy new versions to a disabled target again."""
    _switch(remote, "targets", target_id, True)


@remote_command(targets, "disable")
def targets_disable(remote: Remote, target_id: IdArgument) -> None:
    """Deploy nothing to a target, keeping its settings and its certificates (new versions
    skip it, and their timeline says so)."""
    _switch(remote, "targets", target_id, False)


# -- notification channels and expiry alerts ------------------------------------------------
channels = typer.Typer(
    help="Where a project's notifications go (e-mail, webhook).", no_args_is_help=True
)
alerts = typer.Typer(help="The daily expiry digest's thresholds.", no_args_is_help=True)
CHANNEL_FIELDS = [col("id"), col("name"), col("kind"), col("config"), col("has_secret")]


@remote_command(channels, "list")
def channels_list(remote: Remote) -> None:
    """The project's notification channels (secrets are never shown)."""
    _list(remote, "/projects/{project}/notification-channels", CHANNEL_FIELDS)


@remote_command(channels, "create")
def channels_create(
    remote: Remote,
    name: Annotated[str, typer.Argument(help="The channel's name, e.g. ops-mail.")],
    kind: Annotated[str, typer.Option(help="email or webhook (see plugins).")],
    set_: SetOption = None,
    secret: SecretOption = None,
    from_file: FromFileOption = None,
) -> None:
    """Create a channel, e.g. --kind webhook --set webhook.url=https://hooks.example.com/x
    --secret webhook.secret=hook.secret."""
    body = build_body(set_, secret, from_file)
    body.setdefault("name", name)
    body.setdefault("kind", kind)
    _send(remote, "POST", "/projects/{project}/notification-channels", body, CHANNEL_FIELDS)


ALERT_FIELDS = [col("thresholds_days"), col("enabled")]


@remote_command(alerts, "show")
def alerts_show(remote: Remote) -> None:
    """The days before expiry at which certificates are listed in the daily digest."""
    _show_fields(remote, "/projects/{project}/expiry-alerts", ALERT_FIELDS)


@remote_command(alerts, "set")
def alerts_set(
    remote: Remote,
    days: Annotated[
        list[int] | None,
        typer.Option("--days", min=1, max=365, help="A threshold in days (repeat for more)."),
    ] = None,
    enabled: Annotated[
        bool, typer.Option("--enabled/--disabled", help="Send the digest at all.")
    ] = True,
) -> None:
    """Replace the thresholds (default 30, 14, 7 and 1 days) and switch the digest."""
    body: dict[str, Any] = {"enabled": enabled}
    if days:
        body["thresholds_days"] = days
    _send(remote, "PUT", "/projects/{project}/expiry-alerts", body, ALERT_FIELDS)


def _show_fields(remote: Remote, path: str, fields: list[Any]) -> None:
    with remote.client() as client:
        emit_object(remote.output, client.get(remote.path(path)), fields)
