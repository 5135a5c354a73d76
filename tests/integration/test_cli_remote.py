"""The remote CLI (``certautopilot certs ...``) as a user runs it: a subprocess talking HTTP
to a live service, checked by what it prints and by its exit code (README, "Command line")."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certautopilot.app import create_app
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service
from tests.integration.live_server import serve_in_thread

# A local target in the test below writes under the temp dir (as in test_distribution).
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_ROOTS", tempfile.gettempdir())


@pytest.fixture(scope="module")
def live_url(service: Service) -> Iterator[str]:
    """The session's service over real HTTP (its worker issues)."""
    with serve_in_thread(create_app(service.settings)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def login_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "login.json"


class Cli:
    """``python -m certautopilot.cli`` with a clean client environment: no URL or token
    but those a test passes, and a login file of its own (never the user's)."""

    def __init__(self, login_file: Path, env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CERTAUTOPILOT_")}
        self.env = {**base, "CERTAUTOPILOT_LOGIN_FILE": str(login_file), **(env or {})}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "certautopilot.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--output", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def cli(live_url: str, service: Service, project: Project, login_file: Path) -> Cli:
    return Cli(
        login_file,
        {
            "CERTAUTOPILOT_URL": live_url,
            "CERTAUTOPILOT_TOKEN": service.admin_token,
            "CERTAUTOPILOT_PROJECT": project.slug,
        },
    )


def _name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}.example.test"


def test_create_wait_download_timeline_renew_revoke(cli: Cli, tmp_path: Path) -> None:
    name = _name()
    cert = cli.json("certs", "create", name, "--issuer", "pebble", "--wait", "--timeout", "120")
    assert cert["status"] == "issued" and cert["common_name"] == name
    cid = cert["id"]

    listing = cli("certs", "list")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:3] == ["ID", "COMMON_NAME", "STATUS"]
    assert any(r.split()[:3] == [cid, name, "issued"] for r in rows), listing.stdout

    shown = cli("certs", "show", cid)
    assert shown.returncode == 0
    assert "serial:" in shown.stdout and cert["current"]["serial"] in shown.stdout

    pem = cli("certs", "download", cid)
    assert pem.returncode == 0, pem.stderr
    chain = x509.load_pem_x509_certificates(pem.stdout.encode())
    leaf = chain[0]
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == name
    assert len(chain) >= 2  # the leaf and its issuer
    key_file = tmp_path / "key.pem"
    saved = cli("certs", "download", cid, "--what", "key", "--out", str(key_file))
    assert saved.returncode == 0, saved.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()

    events = cli.json("certs", "timeline", cid)["events"]
    assert [e["type"] for e in events][:1] == ["cert.requested"]
    assert "cert.issued" in [e["type"] for e in events]
    table = cli("certs", "timeline", cid)
    assert "cert.issued" in table.stdout and table.stdout.startswith("AT")

    renewed = cli.json("certs", "renew", cid, "--wait", "--timeout", "120")
    assert renewed["status"] == "issued"
    assert renewed["current"]["serial"] != cert["current"]["serial"]

    revoked = cli.json("certs", "revoke", cid, "--reason", "superseded")
    assert revoked["status"] == "revoked"
    waited = cli("certs", "wait", cid)
    assert waited.returncode == 4, (waited.stdout, waited.stderr)  # it will never be issued


def test_deploy_versions_preflight_and_the_rest_of_the_api(cli: Cli, tmp_path: Path) -> None:
    """The commands beyond issuing, each against the live service: targets attached by
    name, a dry run then a deployment to a real directory, the deployments, the versions
    and an earlier version's download, preflight, a zone's suggestion and CAA, the issuer's
    profiles, a channel, the expiry digest's thresholds, the backlog and the audit export."""
    name = _name()
    cert = cli.json("certs", "create", name, "--issuer", "pebble", "--wait", "--timeout", "120")
    cid, first_serial = cert["id"], cert["current"]["serial"]
    folder = Path(tempfile.mkdtemp(prefix="cli-target-"))
    target = cli.json(
        "targets", "create", f"files-{cid[:6]}", "--kind", "local",
        "--set", f"local.files.directory={folder}",
    )  # fmt: skip
    assert cli.json("certs", "attach", cid, target["name"])[0]["id"] == target["id"]
    assert [t["id"] for t in cli.json("certs", "targets", cid)] == [target["id"]]
    unknown = cli("certs", "attach", cid, "no-such-target")
    assert unknown.returncode == 2 and target["name"] in unknown.stderr

    dry = cli.json("certs", "deploy", cid, "--dry-run")
    assert dry["dry_run"] is True and dry["results"][0]["ok"] is True, dry
    assert list(folder.iterdir()) == []  # a dry run writes nothing
    done = cli.json("certs", "deploy", cid, "--target", target["name"])
    assert [d["target"]["id"] for d in done["deployments"]] == [target["id"]]
    latest = cli.json("certs", "deployments", cid)["items"][0]["latest"]
    deadline = time.monotonic() + 60
    while latest["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        latest = cli.json("certs", "deployments", cid)["items"][0]["latest"]
    assert latest["status"] == "succeeded", latest
    assert any(folder.iterdir())  # the files are there
    table = cli("certs", "deployments", cid, "--history", "5")
    assert table.returncode == 0 and target["name"] in table.stdout and "succeeded" in table.stdout

    renewed = cli.json("certs", "renew", cid, "--wait", "--timeout", "120")
    assert renewed["current"]["serial"] != first_serial
    versions = cli.json("certs", "versions", cid)
    assert [(v["seq"], v["current"]) for v in versions] == [(2, True), (1, False)]
    old = cli("certs", "download", cid, "--what", "cert", "--version", "1")
    assert old.returncode == 0, old.stderr
    assert format(x509.load_pem_x509_certificate(old.stdout.encode()).serial_number, "x") in (
        first_serial.lower().lstrip("0"),
        first_serial.lower(),
    )
    assert cli("certs", "detach", cid, target["id"]).returncode == 0
    assert cli.json("certs", "targets", cid) == []

    clean = cli("certs", "preflight", _name(), "--issuer", "pebble")
    assert clean.returncode == 0 and "example.test" in clean.stdout, clean.stderr
    warned = cli("certs", "preflight", "www.nowhere.invalid", "--issuer", "pebble")
    assert warned.returncode == 1 and "dns.no_zone" in warned.stderr

    suggestion = cli.json("zones", "suggest", f"www.{name}")
    assert suggestion["zone"] == "example.test"
    zone_id = suggestion["zone_id"]
    caa = cli.json("zones", "caa", zone_id)
    assert caa["zone"] == "example.test" and caa["issuers"][0]["issuer"] == "pebble"
    issuer = cli.json("issuers", "list")[0]
    assert cli.json("issuers", "profiles", issuer["id"])["profiles"] == []  # Pebble 2.4: none

    secret = tmp_path / "hook.secret"
    secret.write_text("a-webhook-signing-secret\n")
    channel = cli.json(
        "channels", "create", f"hook-{cid[:6]}", "--kind", "webhook",
        "--set", "webhook.url=http://127.0.0.1:9/hook", "--secret", f"webhook.secret={secret}",
    )  # fmt: skip
    assert channel["has_secret"] is True
    listed = cli("channels", "list")
    assert channel["id"] in listed.stdout and "a-webhook-signing-secret" not in listed.stdout
    assert cli.json("expiry-alerts", "set", "--days", "21", "--days", "3") == {
        "thresholds_days": [21, 3],
        "enabled": True,
    }
    assert cli.json("expiry-alerts", "show")["thresholds_days"] == [21, 3]

    backlog = cli.json("certs", "backlog")
    assert {"waiting", "renewing", "issuers"} <= set(backlog)
    exported = cli("audit", "export", "--limit", "10000")
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert any(e["type"] == "cert.renewed" and e["subject_id"] == cid for e in events)
    later = cli("audit", "export", "--after", str(events[-1]["seq"]))
    assert later.returncode == 0 and later.stdout == ""
    refused = cli("certs", "check-ca", cid)  # an ACME certificate has no request at a CA
    assert refused.returncode == 1 and "409" in refused.stderr


def test_exit_codes_and_problem_fields(cli: Cli, login_file: Path, live_url: str) -> None:
    bad = cli("certs", "create", "not a name", "--issuer", "pebble")
    assert bad.returncode == 1
    assert "error: 422" in bad.stderr or "error: 400" in bad.stderr
    assert "common_name" in bad.stderr, bad.stderr  # the field, with its message

    missing = cli("certs", "show", "no-such-id")
    assert missing.returncode == 1 and "404" in missing.stderr

    no_issuer = cli("certs", "create", _name(), "--issuer", "nope")
    assert no_issuer.returncode == 2 and "--issuer" in no_issuer.stderr
    assert "pebble" in no_issuer.stderr  # the issuers there are

    usage = cli("certs", "download", "x", "--what", "everything")
    assert usage.returncode == 2 and "--what" in usage.stderr

    wrong_token = Cli(login_file, {**cli.env, "CERTAUTOPILOT_TOKEN": "cap_wrong"})("certs", "list")
    assert wrong_token.returncode == 1 and "401" in wrong_token.stderr

    nothing = Cli(login_file)("certs", "list")
    assert nothing.returncode == 2 and "certautopilot login" in nothing.stderr

    with_url = Cli(login_file, {"CERTAUTOPILOT_URL": live_url})("projects", "list")
    assert with_url.returncode == 2 and "no API token" in with_url.stderr

    down = cli("certs", "list", "--url", "http://127.0.0.1:9")
    assert down.returncode == 3 and "not reachable" in down.stderr


def test_login_stores_a_private_file_the_commands_use(
    cli: Cli, login_file: Path, live_url: str, service: Service, project: Project
) -> None:
    bare = Cli(login_file)
    refused = bare("login", "--url", live_url, "--token", "cap_wrong")
    assert refused.returncode == 1 and not login_file.exists()
    unknown = bare("login", "--url", live_url, "--token", service.admin_token, "-p", "nope")
    assert unknown.returncode == 2 and project.slug in unknown.stderr

    # The token typed at the prompt (hidden), so it stays out of the shell history.
    done = bare("login", "--url", live_url, "-p", project.slug, stdin=service.admin_token + "\n")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(login_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(login_file.parent.stat().st_mode) == 0o700
    assert service.admin_token not in done.stdout + done.stderr

    zones = bare.json("zones", "list")
    assert {z["name"] for z in zones} >= {"example.test", "sub.example.test"}
    issuers = bare("issuers", "list")
    assert issuers.returncode == 0 and project.issuer_id in issuers.stdout
    assert project.slug in {p["slug"] for p in bare.json("projects", "list")}

    assert bare("logout").returncode == 0 and not login_file.exists()
    assert bare("certs", "list").returncode == 2


def test_approval_through_the_cli(cli: Cli, service: Service, project: Project) -> None:
    set_policy = cli("policy", "set", "-", stdin=json.dumps({"approval_required": True}))
    assert set_policy.returncode == 0, set_policy.stderr
    assert cli.json("policy", "show")["rules"]["approval_required"] is True
    approver = f"approver-{uuid.uuid4().hex[:6]}@example.test"
    assert cli("members", "add", approver, "--role", "approver").returncode == 0
    assert {"email": approver, "role": "approver"} in cli.json("members", "list")

    cert = cli.json("certs", "create", _name(), "--issuer", "pebble")
    assert cert["status"] == "awaiting_approval"
    pending = cli.json("requests", "list", "--status", "pending")
    (request,) = [r for r in pending if r["certificate_id"] == cert["id"]]

    own = cli("requests", "approve", request["id"])
    assert own.returncode == 1 and "self-approval" in own.stderr

    as_approver = Cli(
        Path(cli.env["CERTAUTOPILOT_LOGIN_FILE"]),
        {**cli.env, "CERTAUTOPILOT_TOKEN": service.token_for(approver)},
    )
    decided = as_approver.json("requests", "approve", request["id"], "--comment", "ok")
    assert decided["status"] == "approved"
    issued = cli("certs", "wait", cert["id"], "--timeout", "120")
    assert issued.returncode == 0, issued.stderr
    assert "issued" in issued.stdout


def test_bulk_from_a_file_waits_and_is_idempotent(cli: Cli) -> None:
    one, two = _name(), _name()
    text = f"# certificates for the team\n{one}\n{two} www.{two}  # with a SAN\nnot..valid\n"
    first = cli("certs", "bulk", "-", "--issuer", "pebble", "--wait", "-o", "json", stdin=text)
    assert first.returncode == 1, first.stderr  # one line refused, the others issued
    assert "error: not..valid: " in first.stderr and "common_name" in first.stderr
    issued = json.loads(first.stdout)
    assert {c["common_name"] for c in issued} == {one, two}
    assert {c["status"] for c in issued} == {"issued"}
    assert f"www.{two}" in next(c for c in issued if c["common_name"] == two)["sans"]

    again = cli("certs", "bulk", "-", "--issuer", "pebble", "-o", "json", stdin=text)
    assert {c["id"] for c in json.loads(again.stdout)} == {c["id"] for c in issued}


def test_tokens_create_list_revoke(cli: Cli, login_file: Path) -> None:
    made = cli("tokens", "create", "cli test")
    assert made.returncode == 0, made.stderr
    new = made.stdout.strip()
    as_new = Cli(login_file, {**cli.env, "CERTAUTOPILOT_TOKEN": new})
    (row,) = [t for t in as_new.json("tokens", "list") if new.startswith(t["prefix"])]
    assert row["name"] == "cli test" and "token" not in row
    assert new not in as_new("tokens", "list").stdout  # only the prefix is ever shown

    empty = cli("tokens", "create", "")
    assert empty.returncode == 1 and "name" in empty.stderr

    assert cli("tokens", "revoke", row["id"]).returncode == 0
    after = as_new("certs", "list")
    assert after.returncode == 1 and "401" in after.stderr  # it stopped working at once
    assert cli("tokens", "revoke", row["id"]).returncode == 1  # 404 now


def test_a_token_limited_to_a_project_and_a_role_from_the_cli(
    cli: Cli, login_file: Path, project: Project
) -> None:
    made = cli.json(
        "tokens",
        "create",
        "read only",
        "--only-project",
        project.slug,
        "--role",
        "viewer",
        "--expires-in-days",
        "7",
    )
    assert (made["project"], made["role"], made["expired"]) == (project.slug, "viewer", False)
    assert made["expires_at"] is not None
    narrow = Cli(login_file, {**cli.env, "CERTAUTOPILOT_TOKEN": made["token"]})
    assert narrow("certs", "list").returncode == 0
    refused = narrow("tokens", "list")
    assert refused.returncode == 1
    assert f"limited to project {project.slug}, role viewer" in refused.stderr
    forever = cli.json("tokens", "create", "forever", "--never-expires")
    assert forever["expires_at"] is None


def test_zones_create_test_edit_delete_with_a_secret_from_a_file(
    cli: Cli, lab: LabInfo, tmp_path: Path
) -> None:
    secret_file = tmp_path / "tsig.key"
    secret_file.write_text(lab.tsig_secret + "\n")
    zone_name = "example.test"  # a zone the lab's BIND serves, in a project of its own
    slug = f"z-{uuid.uuid4().hex[:8]}"
    assert cli("projects", "create", slug).returncode == 0
    cli.env["CERTAUTOPILOT_PROJECT"] = slug
    made = cli(
        "zones", "create", zone_name, "--provider", "rfc2136",
        "--set", "rfc2136.server=127.0.0.1",
        "--set", f"rfc2136.port={lab.dns_port}",
        "--set", f"rfc2136.tsig_name={lab.tsig_name}",
        "--set", f"rfc2136.tsig_algorithm={lab.tsig_algorithm}",
        "--secret", f"rfc2136.tsig_secret={secret_file}",
        "--set", f'nameservers=["127.0.0.1:{lab.dns_port}"]',
        "--output", "json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert lab.tsig_secret not in made.stdout + made.stderr
    zone = json.loads(made.stdout)
    assert zone["name"] == zone_name and zone["provider"] == "rfc2136"

    tested = cli("zones", "test", zone["id"])
    assert tested.returncode == 0, (tested.stdout, tested.stderr)
    assert tested.stdout.startswith("STEP") and "yes" in tested.stdout

    edited = cli.json("zones", "edit", zone["id"], "--set", "propagation_timeout_seconds=45")
    assert edited["id"] == zone["id"]
    shown = cli.json("zones", "show", zone["id"])
    assert shown["propagation_timeout_seconds"] == 45 and shown["enabled"] is True

    assert cli.json("zones", "disable", zone["id"])["enabled"] is False
    listed = cli("zones", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert "ENABLED" in header and zone["id"] in row and "no" in row.split()
    assert cli.json("zones", "enable", zone["id"])["enabled"] is True

    deleted = cli("zones", "delete", zone["id"])
    assert deleted.returncode == 0, deleted.stderr
    gone = cli("zones", "show", zone["id"])
    assert gone.returncode == 1 and "404" in gone.stderr


def test_zone_with_a_wrong_key_is_refused_naming_the_problem(cli: Cli, lab: LabInfo) -> None:
    bad = cli(
        "zones", "create", "bad.example.test", "--provider", "rfc2136",
        "--set", "rfc2136.server=127.0.0.1", "--set", f"rfc2136.port={lab.dns_port}",
        "--set", f"rfc2136.tsig_name={lab.tsig_name}",
        "--secret", "rfc2136.tsig_secret=-",
        stdin="d3JvbmctYnV0LWJhc2U2NC1zZWNyZXQtdmFsdWUtMzI=\n",
    )  # fmt: skip
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert bad.stderr.startswith("error: 422")
    assert "d3JvbmctYnV0" not in bad.stdout + bad.stderr
    usage = cli("zones", "create", "x.test", "--set", "novalue")
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr


def test_issuers_create_edit_and_targets_create_edit_delete(
    cli: Cli, lab: LabInfo, tmp_path: Path
) -> None:
    body = tmp_path / "issuer.json"
    ca = lab.ca_bundle_path.read_text()
    body.write_text(json.dumps({"acme": {"terms_agreed": True, "ca_bundle_pem": ca}}))
    name = f"pebble-{uuid.uuid4().hex[:6]}"
    made = cli(
        "issuers", "create", name, "--from-file", str(body),
        "--set", f"acme.directory_url={lab.directory_url}",
        "--set", "acme.contact_email=ops@example.test",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "name:" in made.stdout and name in made.stdout
    issuers = cli.json("issuers", "list")
    issuer = next(i for i in issuers if i["name"] == name)
    assert issuer["kind"] == "acme"
    edited = cli.json("issuers", "edit", issuer["id"], "--set", "acme.caa_identity=pebble.test")
    assert edited["id"] == issuer["id"]
    assert "pebble.test" in json.dumps(cli.json("issuers", "show", issuer["id"]))
    bad = cli("issuers", "edit", issuer["id"], "--set", f"name={name}-2")
    assert bad.returncode == 1 and "name" in bad.stderr and "422" in bad.stderr

    secret = tmp_path / "hook.secret"
    secret.write_text("s3cr3t-hook-value-0123456789abcdef\n")
    target = cli(
        "targets", "create", "hook-1", "--kind", "webhook",
        "--set", "webhook.url=https://127.0.0.1:9/hook",
        "--secret", f"webhook.secret={secret}", "--output", "json",
    )  # fmt: skip
    assert target.returncode == 0, target.stderr
    assert "s3cr3t-hook" not in target.stdout + target.stderr
    tid = json.loads(target.stdout)["id"]
    edited = cli.json("targets", "edit", tid, "--set", "webhook.url=https://127.0.0.1:9/other")
    assert edited["id"] == tid
    shown = cli("targets", "show", tid)
    assert shown.returncode == 0 and "/other" in shown.stdout and "s3cr3t" not in shown.stdout
    # nothing listens on port 9: the check's step says so, and the exit code is 1
    tested = cli("targets", "test", tid)
    assert tested.returncode == 1 and "FAILED" in tested.stderr, tested.stdout + tested.stderr
    assert "127.0.0.1" in tested.stdout and "s3cr3t" not in tested.stdout + tested.stderr
    assert cli("targets", "delete", tid).returncode == 0
    assert tid not in cli("targets", "list").stdout


def test_issuers_test_disable_enable_delete_and_targets_disable_enable(
    cli: Cli, project: Project, lab: LabInfo, tmp_path: Path
) -> None:
    tested = cli("issuers", "test", project.issuer_id)
    assert tested.returncode == 0 and "ok" in tested.stderr, tested.stdout + tested.stderr
    assert "directory" in tested.stdout and "account" in tested.stdout
    assert lab.directory_url in tested.stdout
    off = cli.json("issuers", "disable", project.issuer_id)
    assert off["status"] == "disabled"
    refused = cli("certs", "create", _name(), "--issuer", project.issuer_id)
    assert refused.returncode == 1 and "issuer" in refused.stderr and "disabled" in refused.stderr
    assert cli.json("issuers", "enable", project.issuer_id)["status"] == "active"

    cid = cli.json("certs", "create", _name(), "--issuer", "pebble", "--wait", "--timeout", "120")[
        "id"
    ]
    kept = cli("issuers", "delete", project.issuer_id)
    assert kept.returncode == 1 and "409" in kept.stderr and cid in kept.stderr, kept.stderr

    secret = tmp_path / "hook.secret"
    secret.write_text("another-hook-secret-0123456789abcdef\n")
    target = cli.json(
        "targets", "create", "hook-2", "--kind", "webhook",
        "--set", "webhook.url=https://127.0.0.1:9/hook", "--secret", f"webhook.secret={secret}",
    )  # fmt: skip
    assert cli.json("targets", "disable", target["id"])["enabled"] is False
    assert cli.json("targets", "show", target["id"])["enabled"] is False
    assert cli.json("targets", "enable", target["id"])["enabled"] is True
    assert cli("targets", "delete", target["id"]).returncode == 0


def test_dns_confirm_and_pkcs12_download(cli: Cli, lab: LabInfo, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider

    name = f"m{uuid.uuid4().hex[:6]}.manual.test"
    cert = cli.json("certs", "create", name, "--issuer", "pebble")
    early = cli("certs", "dns-confirm", cert["id"])  # not waiting for DNS yet, or now is
    assert early.returncode in (0, 1)
    deadline = time.monotonic() + 60
    while cert["status"] != "awaiting_dns" and time.monotonic() < deadline:
        time.sleep(0.1)
        cert = cli.json("certs", "show", cert["id"])
    assert cert["status"] == "awaiting_dns", cert
    [record] = cert["pending_action"]["records"]
    RFC2136Provider(
        RFC2136Config(
            server="127.0.0.1",
            port=lab.dns_port,
            tsig_name=lab.tsig_name,
            tsig_algorithm=lab.tsig_algorithm,
            tsig_secret=lab.tsig_secret,
        )
    ).publish_txt("manual.test", record["name"], record["value"], 60)
    done = cli.json("certs", "dns-confirm", cert["id"], "--wait", "--timeout", "120")
    assert done["status"] == "issued", done

    again = cli("certs", "dns-confirm", cert["id"])
    assert again.returncode == 1 and "409" in again.stderr

    password = tmp_path / "p12.pass"
    password.write_text("correct horse\n")
    out = tmp_path / "bundle.p12"
    saved = cli(
        "certs", "download", cert["id"], "--format", "pkcs12",
        "--password-file", str(password), "--out", str(out),
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key, leaf, chain = pkcs12.load_key_and_certificates(out.read_bytes(), b"correct horse")
    assert key is not None and leaf is not None and key.public_key() == leaf.public_key()
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == name
    assert chain
    nopass = cli("certs", "download", cert["id"], "--format", "pkcs12")
    assert nopass.returncode == 2 and "--password-file" in nopass.stderr


def test_show_completion_prints_a_bash_script(cli: Cli) -> None:
    """Run from bash, as a person would (typer detects the shell from the parent process)."""
    exe = Path(sys.executable).parent / "certautopilot"
    done = subprocess.run(
        # two commands: bash forks for the first instead of exec-ing it, so it is the parent
        ["bash", "-c", f"'{exe}' --show-completion; exit $?"],
        env=cli.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "complete -o default -F _certautopilot_completion certautopilot" in done.stdout
    assert "_CERTAUTOPILOT_COMPLETE=complete_bash" in done.stdout


def _complete(cli: Cli, shell: str, line: str, **env: str) -> str:
    """What the completion script gets back for ``line`` (bash: the word being completed
    is the last one; zsh: ``line`` as typed)."""
    exe = Path(sys.executable).parent / "certautopilot"
    words = line.split()
    asked = {
        **cli.env,
        **env,
        "_CERTAUTOPILOT_COMPLETE": f"complete_{shell}",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
        "_TYPER_COMPLETE_ARGS": line,
    }
    done = subprocess.run([str(exe)], env=asked, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


def test_certificate_ids_complete_from_the_live_service(
    cli: Cli, service: Service, project: Project
) -> None:
    names = [_name(), _name()]
    certs = [
        service.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": name},
        )
        for name in names
    ]
    first = certs[0]["id"]
    by_id = _complete(cli, "bash", f"certautopilot certs show {first[:8]}")
    assert by_id.split() == [first]
    every = _complete(cli, "bash", "certautopilot certs renew ''").split()
    assert {c["id"] for c in certs} <= set(every)
    zsh = _complete(cli, "zsh", f"certautopilot certs timeline {first[:8]}")
    assert f'"{first}":"{names[0]} (' in zsh  # the id, with its name as the help
    # the project typed on the line is the one asked; one the token cannot see: nothing
    elsewhere = _complete(cli, "bash", f"certautopilot certs show --project nope-x {first[:8]}")
    assert elsewhere.split() == []
    for cert in certs:
        service.wait_for(project.slug, cert["id"], ("issued", "failed"))


def test_project_slugs_complete_from_the_live_service(cli: Cli, project: Project) -> None:
    exe = Path(sys.executable).parent / "certautopilot"
    env = {
        **cli.env,
        "_CERTAUTOPILOT_COMPLETE": "complete_bash",
        "COMP_WORDS": f"certautopilot certs list --project {project.slug[:6]}",
        "COMP_CWORD": "4",
    }
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert project.slug in done.stdout.split()
    offline = {**env, "CERTAUTOPILOT_URL": "http://127.0.0.1:9"}
    quiet = subprocess.run([str(exe)], env=offline, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and project.slug not in quiet.stdout and not quiet.stderr
