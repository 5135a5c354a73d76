"""Distribution end to end: real issuance from Pebble fans out to real servers.

Started once for this module (temp dirs, free ports, stopped by pid): OpenSSH with nginx
behind it, HAProxy with its admin socket, moto's standalone server (ACM), an OpenBao dev
server (Vault KV v2), a TLS webhook receiver, and an HTTP fake of the Kubernetes Secrets
API (no real API server can run here). A kind whose server cannot start here is skipped
with the reason; the others still run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certautopilot.distribution.interfaces import DistributionError, Material
from certautopilot.distribution.schemas import FilesSpec, HaproxyConfig, SshConfig, VaultKvConfig
from certautopilot.distribution.targets.haproxy import HaproxyTarget
from certautopilot.distribution.targets.ssh import SshTarget
from certautopilot.distribution.targets.vault_kv import VaultKvTarget
from certautopilot.distribution.targets.webhook import verify
from tests.conftest import Project, Service
from tests.integration import distribution_servers as ds
from tests.integration._receivers import wait_until

# Targets on the service's own host (local, HAProxy's socket and file) live under the temp
# dir; set before the session's service (and its worker) start, at collection time.
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_ROOTS", tempfile.gettempdir())
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_COMMANDS", "1")

NAME = "www.example.test"
WEBHOOK_SECRET = "whsec-0123456789abcdef-0123456789"
VAULT_TOKEN = "root-token-for-tests"
KUBE_TOKEN = "kube-token-for-tests"
AWS = {"access_key_id": "AKIATESTTESTTEST", "secret_access_key": "aws-secret-for-tests"}
P12_PASSWORD = "p12-password-for-tests"
FAST_RETRY = {"max_attempts": 3, "delay_seconds": 0.3, "backoff": 1.5}


Servers = ds.TargetServers


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with ds.target_servers(
        tmp_path_factory.mktemp("targets"),
        server_name=NAME,
        vault_token=VAULT_TOKEN,
        kube_token=KUBE_TOKEN,
    ) as s:
        yield s


# -- helpers -----------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """Names on the shared servers differ per test run (the module runs once per database)."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def target_bodies(s: Servers, tag: str) -> dict[str, dict[str, Any]]:
    """One target of every kind whose server runs, named ``<kind>-<tag>``."""
    bodies: dict[str, dict[str, Any]] = {}
    if s.ssh:
        bodies["ssh"] = {
            "ssh": {
                "host": "127.0.0.1",
                "port": s.ssh.ssh_port,
                "username": "root",
                "host_key": s.ssh.host_key,
                "private_key": s.ssh.client_key,
                "files": {
                    "directory": str(s.ssh.cert_dir),
                    "pkcs12": "bundle.p12",
                },
                "pkcs12_password": P12_PASSWORD,
                "reload_command": s.ssh.reload_command,
            },
            "post_deploy_check": {
                "host": "127.0.0.1",
                "port": s.ssh.https_port,
                "server_name": NAME,
            },
        }
    local_dir = s.base / f"local-{tag}"
    local_dir.mkdir(exist_ok=True)
    bodies["local"] = {
        "local": {"files": {"directory": str(local_dir), "combined": "combined.pem"}}
    }
    if s.haproxy:
        bodies["haproxy"] = {
            "haproxy": {
                "runtime_api": str(s.haproxy.socket),
                "cert_file": str(s.haproxy.cert_file),
            },
            "post_deploy_check": {"host": "127.0.0.1", "port": s.haproxy.port},
        }
    bodies["webhook"] = {
        "webhook": {
            "url": f"https://127.0.0.1:{s.webhook_port}/hook/{tag}",
            "secret": WEBHOOK_SECRET,
            "ca_bundle_pem": s.webhook_ca,
        }
    }
    if s.moto:
        bodies["aws-acm"] = {"aws_acm": {"region": "eu-west-1", "endpoint_url": s.moto.url, **AWS}}
    if s.bao:
        bodies["vault-kv"] = {
            "vault_kv": {"address": s.bao.url, "token": VAULT_TOKEN, "path": f"certs/{tag}"}
        }
    bodies["kubernetes-secret"] = {
        "kubernetes_secret": {
            "api_server": f"http://127.0.0.1:{s.kube_port}",
            "token": KUBE_TOKEN,
            "namespace": "web",
            "name": f"tls-{tag}",
            "include_ca": True,
        }
    }
    return {
        kind: {"name": f"{kind}-{tag}", "kind": kind, "retry": FAST_RETRY, **body}
        for kind, body in bodies.items()
    }


def create_targets(service: Service, p: str, bodies: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {
        kind: service.ok("POST", f"/projects/{p}/targets", 201, json=body)["id"]
        for kind, body in bodies.items()
    }


def issue(service: Service, project: Project, targets: list[str], **extra: Any) -> dict[str, Any]:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": NAME,
            "distribution_targets": targets,
            **extra,
        },
    )
    body = service.wait_for(p, created["id"], ("issued", "failed"))
    assert body["status"] == "issued", body["error"]
    return body


def wait_deployed(
    service: Service, p: str, cert_id: str, serial: str, count: int, timeout: float = 60
) -> dict[str, dict[str, Any]]:
    """Latest deployment per target kind (by name when a kind repeats) once each of
    ``count`` targets finished ``serial``."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        body = service.ok("GET", f"/projects/{p}/certificates/{cert_id}/deployments")
        items = [i for i in body["items"] if i["latest"] and i["latest"]["serial"] == serial]
        kinds = [i["target"]["kind"] for i in items]
        latest = {
            (k if kinds.count(k) == 1 else i["target"]["name"]): i["latest"]
            for i in items
            if (k := i["target"]["kind"])
        }
        done = [d for d in latest.values() if d["status"] in ("succeeded", "failed")]
        if len(done) == count:
            return latest
        time.sleep(0.1)
    pytest.fail(f"deployments did not finish: {latest}")


def events(service: Service, p: str, cert_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in service.timeline(p, cert_id)["events"] if e["type"] == type_]


def fullchain(service: Service, p: str, cert_id: str) -> str:
    response = service.call("GET", f"/projects/{p}/certificates/{cert_id}/fullchain.pem")
    assert response.status_code == 200
    return str(response.text)


def acm(s: Servers) -> Any:
    assert s.moto
    return boto3.client(
        "acm",
        region_name="eu-west-1",
        endpoint_url=s.moto.url,
        aws_access_key_id=AWS["access_key_id"],
        aws_secret_access_key=AWS["secret_access_key"],
    )


def vault(s: Servers) -> hvac.Client:
    assert s.bao
    return hvac.Client(url=s.bao.url, token=VAULT_TOKEN)


# -- tests ---------------------------------------------------------------------------------


def test_issuance_and_renewal_fan_out_to_every_kind(
    service: Service, project: Project, servers: Servers
) -> None:
    s, p = servers, project.slug
    tag = unique("fan")
    bodies = target_bodies(s, tag)
    ids = create_targets(service, p, bodies)

    cert = issue(service, project, list(ids.values()))
    serial = cert["current"]["serial"]
    latest = wait_deployed(service, p, cert["id"], serial, len(ids))
    assert {k: d["status"] for k, d in latest.items()} == dict.fromkeys(ids, "succeeded"), latest
    assert all(d["reason"] == "issued" and d["attempts"] == 1 for d in latest.values())
    distributed = events(service, p, cert["id"], "cert.distributed")
    assert sorted(e["detail"]["kind"] for e in distributed) == sorted(ids)
    chain = fullchain(service, p, cert["id"])
    leaf_fp = ds.fingerprint_of(chain)
    arn = latest["aws-acm"]["result"]["certificate_arn"] if "aws-acm" in latest else None
    _check_every_kind(s, serial, chain, leaf_fp, tag=tag, arn=arn, first=True)
    acm_count = len(acm(s).list_certificates()["CertificateSummaryList"]) if arn else 0

    # Renewal: a new version fans out again; ACM re-imports into the same ARN.
    service.ok("POST", f"/projects/{p}/certificates/{cert['id']}/renew", 202)
    deadline = time.monotonic() + 60
    renewed = cert
    while renewed["current"]["serial"] == serial and time.monotonic() < deadline:
        renewed = service.wait_for(p, cert["id"], ("issued", "failed"))
        time.sleep(0.05)
    assert renewed["status"] == "issued" and renewed["current"]["serial"] != serial
    serial2 = renewed["current"]["serial"]
    latest2 = wait_deployed(service, p, cert["id"], serial2, len(ids))
    assert {k: d["status"] for k, d in latest2.items()} == dict.fromkeys(ids, "succeeded")
    assert all(d["reason"] == "renewed" and d["version"] == 2 for d in latest2.values())
    chain2 = fullchain(service, p, cert["id"])
    if arn:
        assert latest2["aws-acm"]["result"]["certificate_arn"] == arn
        assert len(acm(s).list_certificates()["CertificateSummaryList"]) == acm_count
    _check_every_kind(s, serial2, chain2, ds.fingerprint_of(chain2), tag=tag, arn=arn, first=False)


def _check_every_kind(
    s: Servers,
    serial: str,
    chain: str,
    leaf_fp: str,
    *,
    tag: str,
    arn: str | None,
    first: bool,
) -> None:
    if s.ssh:
        # nginx was reloaded over SSH and now serves the new certificate.
        s.ssh.wait_served(NAME, leaf_fp)
        d = s.ssh.cert_dir
        assert (d / "fullchain.pem").read_text() == chain
        assert stat.S_IMODE((d / "privkey.pem").stat().st_mode) == 0o600
        assert stat.S_IMODE((d / "cert.pem").stat().st_mode) == 0o644
        key, leaf, cas = pkcs12.load_key_and_certificates(
            (d / "bundle.p12").read_bytes(), P12_PASSWORD.encode()
        )
        assert key is not None and leaf is not None and cas
        assert format(leaf.serial_number, "x") == serial
        # No temporary file is left behind. The directory is shared by this module's
        # tests, so one still being renamed into place must be gone within a few seconds.
        deadline = time.monotonic() + 10
        while temps := [f for f in os.listdir(d) if f.endswith(".tmp")]:
            assert time.monotonic() < deadline, f"temporary files left in {d}: {temps}"
            time.sleep(0.05)
    local = (s.base / f"local-{tag}" / "combined.pem").read_text()
    assert local.startswith(chain) and "PRIVATE KEY" in local
    if s.haproxy:
        assert ds.served_fingerprint(s.haproxy.port, NAME) == leaf_fp
        assert s.haproxy.cert_file.read_text().startswith(chain)
    hooks = [h for h in s.receiver.deliveries if h["path"] == f"/hook/{tag}"]
    hook = hooks[-1]
    h = hook["headers"]
    assert verify(
        WEBHOOK_SECRET, h["x-certautopilot-timestamp"], hook["body"], h["x-certautopilot-signature"]
    )
    payload = json.loads(hook["body"])
    assert payload["serial"] == serial and payload["fullchain_pem"] == chain
    assert "key_pem" not in payload  # not enabled on this target
    if arn:
        described = acm(s).describe_certificate(CertificateArn=arn)
        assert _moto_serial(described["Certificate"]["Serial"]) == int(serial, 16)
    if s.bao:
        read = vault(s).secrets.kv.v2.read_secret_version(path=f"certs/{tag}", mount_point="secret")
        assert read["data"]["data"]["serial"] == serial
        assert read["data"]["metadata"]["version"] == (1 if first else 2)
        assert "PRIVATE KEY" in read["data"]["data"]["private_key"]
    secret = s.kube.secrets[("web", f"tls-{tag}")]
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == chain
    assert "PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"]).decode()


def _moto_serial(value: str) -> int:
    """moto prints the serial in decimal (ACM uses colon-separated hex)."""
    return int(value.replace(":", ""), 16) if ":" in value else int(value)


def _deployment_events(service: Service, p: str, cert_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in service.timeline(p, cert_id)["events"]:
        if e["type"] in ("cert.distributed", "cert.distribution_failed"):
            found.setdefault(e["type"], []).append(e["detail"]["target"])
    return found


def test_a_failing_target_never_blocks_the_others(
    service: Service, project: Project, servers: Servers
) -> None:
    s, p = servers, project.slug
    s.need("ssh")
    assert s.ssh
    dead_port = ds.free_port(udp=False)
    tag = unique("fail")
    s.receiver.fail_first[f"/hook/{tag}-flaky"] = 1
    bodies = target_bodies(s, tag)
    ssh = bodies["ssh"]
    ssh["ssh"]["reload_command"] = "echo 'nginx: [emerg] broken config' >&2; exit 3"
    ssh["ssh"]["files"] = {"directory": str(s.base / f"local-{tag}"), "fullchain": "f.pem"}
    ssh.pop("post_deploy_check")
    chosen = {
        "broken-reload": {**ssh, "name": "broken-reload"},
        "flaky": {
            **bodies["webhook"],
            "name": "flaky",
            "webhook": {
                **bodies["webhook"]["webhook"],
                "url": f"https://127.0.0.1:{s.webhook_port}/hook/{tag}-flaky",
            },
        },
        "unreachable": {
            **bodies["webhook"],
            "name": "unreachable",
            "retry": {"max_attempts": 2, "delay_seconds": 0.2, "backoff": 1},
            "webhook": {
                **bodies["webhook"]["webhook"],
                "url": f"https://127.0.0.1:{dead_port}/hook",
                "timeout_seconds": 2,
            },
        },
        "local": bodies["local"],
    }
    ids = create_targets(service, p, chosen)
    cert = issue(service, project, list(ids.values()))
    wait_deployed(service, p, cert["id"], cert["current"]["serial"], 4)
    body = service.ok("GET", f"/projects/{p}/certificates/{cert['id']}/deployments")
    by_name = {i["target"]["name"]: i["latest"] for i in body["items"]}
    assert by_name[f"local-{tag}"]["status"] == "succeeded"
    flaky = by_name["flaky"]
    assert flaky["status"] == "succeeded" and flaky["attempts"] == 2
    broken = by_name["broken-reload"]
    assert broken["status"] == "failed" and broken["attempts"] == 1  # not retryable
    assert "exited with 3" in broken["error"]["detail"]
    assert "broken config" in broken["error"]["detail"]
    dead = by_name["unreachable"]
    assert dead["status"] == "failed" and dead["attempts"] == 2
    assert "POST https://127.0.0.1" in dead["error"]["detail"]
    found = _deployment_events(service, p, cert["id"])
    assert sorted(found["cert.distributed"]) == ["flaky", f"local-{tag}"]
    assert sorted(found["cert.distribution_failed"]) == ["broken-reload", "unreachable"]
    retried = events(service, p, cert["id"], "distribution.attempt_failed")
    assert sorted(e["detail"]["target"] for e in retried) == ["flaky", "unreachable"]
    # both deliveries of the flaky hook carried the same delivery id (receivers dedupe)
    flaky_hooks = [h for h in s.receiver.deliveries if h["path"] == f"/hook/{tag}-flaky"]
    assert len({h["headers"]["x-certautopilot-delivery"] for h in flaky_hooks}) == 1
    assert len(flaky_hooks) == 2


def test_post_deploy_check_fails_when_the_old_certificate_is_still_served(
    service: Service, project: Project, servers: Servers
) -> None:
    s, p = servers, project.slug
    s.need("ssh")
    assert s.ssh
    tag = unique("stale")
    bodies = target_bodies(s, tag)
    body = bodies["ssh"]
    # Files go where nginx does not look, and nothing reloads it.
    body["ssh"]["files"] = {"directory": str(s.base / f"local-{tag}")}
    body["ssh"].pop("reload_command")
    body["ssh"].pop("pkcs12_password")
    body["post_deploy_check"]["wait_seconds"] = 0.5
    body["retry"] = {"max_attempts": 1}
    ids = create_targets(service, p, {"ssh": body})
    cert = issue(service, project, list(ids.values()))
    latest = wait_deployed(service, p, cert["id"], cert["current"]["serial"], 1)
    failed = latest["ssh"]
    assert failed["status"] == "failed"
    assert "still serves another certificate" in failed["error"]["detail"]
    assert (s.base / f"local-{tag}" / "fullchain.pem").exists()  # the upload itself worked


def _snapshot(s: Servers, arn: str | None, tag: str) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "local": sorted(
            (f.name, f.stat().st_mtime_ns, f.read_bytes())
            for f in (s.base / f"local-{tag}").iterdir()
        ),
        "hooks": len(s.receiver.deliveries),
        "kube": (s.kube.writes, json.dumps(s.kube.secrets.get(("web", f"tls-{tag}")))),
    }
    if s.ssh:
        snap["ssh"] = sorted(
            (f.name, f.stat().st_mtime_ns, f.read_bytes()) for f in s.ssh.cert_dir.iterdir()
        )
        snap["nginx"] = ds.served_fingerprint(s.ssh.https_port, NAME)
    if s.haproxy:
        snap["haproxy"] = (
            ds.served_fingerprint(s.haproxy.port, NAME),
            s.haproxy.cert_file.read_bytes(),
        )
    if s.moto and arn:
        snap["acm"] = (
            acm(s).describe_certificate(CertificateArn=arn)["Certificate"]["Serial"],
            len(acm(s).list_certificates()["CertificateSummaryList"]),
        )
    if s.bao:
        kv = vault(s).secrets.kv.v2
        meta = kv.read_secret_metadata(path=f"certs/{tag}", mount_point="secret")
        snap["vault"] = meta["data"]["current_version"]
    return snap


def test_dry_run_changes_nothing_then_redeploy(
    service: Service, project: Project, servers: Servers
) -> None:
    s, p = servers, project.slug
    tag = unique("dry")
    bodies = target_bodies(s, tag)
    ids = create_targets(service, p, bodies)
    cert = issue(service, project, list(ids.values()))
    serial = cert["current"]["serial"]
    latest = wait_deployed(service, p, cert["id"], serial, len(ids))
    assert all(d["status"] == "succeeded" for d in latest.values()), latest
    arn = latest["aws-acm"]["result"]["certificate_arn"] if "aws-acm" in latest else None
    if s.ssh:
        s.ssh.wait_served(NAME, cert["current"]["fingerprint_sha256"])
    before = _snapshot(s, arn, tag)
    kube_dry_runs = s.kube.dry_runs

    result = service.ok(
        "POST", f"/projects/{p}/certificates/{cert['id']}/deploy", json={"dry_run": True}
    )
    assert result["dry_run"] is True and result["deployments"] == []
    report = {r["target"]["kind"]: r for r in result["results"]}
    assert set(report) == set(ids)
    for kind, item in report.items():
        assert item["ok"], (kind, item)
        assert item["would"], kind
    assert any("run " in w for w in report.get("ssh", {"would": ["run "]})["would"])
    if "aws-acm" in report:
        assert any(f"re-import serial {serial} into {arn}" in w for w in report["aws-acm"]["would"])
    if "vault-kv" in report:
        assert "already holds serial" in report["vault-kv"]["would"][0]

    # The dry run answers when it is done; a deployment it had started would be recorded
    # before the answer (the history below), so nothing is left to wait for.
    assert _snapshot(s, arn, tag) == before
    assert s.kube.dry_runs == kube_dry_runs + 1  # the API server's own dryRun=All was used
    listed = service.ok("GET", f"/projects/{p}/certificates/{cert['id']}/deployments")
    assert len(listed["history"]) == len(ids)  # no deployment was recorded
    assert events(service, p, cert["id"], "cert.deploy_dry_run")

    # A target whose credentials are wrong reports it in the dry run.
    if s.bao:
        bad = service.ok(
            "POST",
            f"/projects/{p}/targets",
            201,
            json={
                "name": "vault-bad-token",
                "kind": "vault-kv",
                "vault_kv": {"address": s.bao.url, "token": "wrong", "path": f"certs/{tag}"},
            },
        )
        service.ok(
            "PUT",
            f"/projects/{p}/certificates/{cert['id']}/targets",
            json={"targets": [*ids.values(), bad["id"]]},
        )
        result = service.ok(
            "POST",
            f"/projects/{p}/certificates/{cert['id']}/deploy",
            json={"dry_run": True, "targets": [bad["id"]]},
        )
        assert result["results"][0]["ok"] is False
        assert "permission denied" in json.dumps(result["results"][0]["checks"]).lower()

    # A real redeploy of one target: a new deployment, the webhook receives it again.
    hooks = len(s.receiver.deliveries)
    again = service.ok(
        "POST",
        f"/projects/{p}/certificates/{cert['id']}/deploy",
        202,
        json={"targets": [ids["webhook"]]},
    )
    assert [d["reason"] for d in again["deployments"]] == ["redeploy"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = service.ok("GET", f"/projects/{p}/certificates/{cert['id']}/deployments")
        mine = [d for d in listed["history"] if d["id"] == again["deployments"][0]["id"]]
        if mine and mine[0]["status"] == "succeeded":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"redeploy did not finish: {listed}")
    assert len(s.receiver.deliveries) == hooks + 1
    assert mine[0]["requested_by"] == "admin@example.test"

    # A revoked certificate is not deployed again.
    service.ok(
        "POST", f"/projects/{p}/certificates/{cert['id']}/revoke", json={"reason": "superseded"}
    )
    refused = service.call("POST", f"/projects/{p}/certificates/{cert['id']}/deploy", json={})
    assert refused.status_code == 409 and "revoked" in refused.json()["detail"]


def test_targets_api_rules_and_no_secret_leaves(
    service: Service, project: Project, servers: Servers
) -> None:
    from tests.integration.test_byo_csr import _csr
    from tests.integration.test_secrets import _everything_in_database, _logs

    s, p = servers, project.slug
    bodies = target_bodies(s, unique("rules"))

    def refused(body: dict[str, Any]) -> tuple[str, str]:
        r = service.call("POST", f"/projects/{p}/targets", json=body)
        assert r.status_code == 422, r.text
        return r.json()["errors"][0]["field"], r.json()["detail"]

    if "ssh" in bodies:
        bad_key = {**bodies["ssh"], "ssh": {**bodies["ssh"]["ssh"], "host_key": "x" * 30}}
        assert refused(bad_key)[0] == "ssh.host_key"
        extra = {**bodies["ssh"], "webhook": bodies["webhook"]["webhook"]}
        assert refused(extra)[0] == "webhook"
    outside = {"name": "etc", "kind": "local", "local": {"files": {"directory": "/etc/ssl"}}}
    assert refused(outside)[0] == "local.files.directory"
    hook = bodies["webhook"]["webhook"]
    plain = {**bodies["webhook"], "webhook": {**hook, "url": "http://127.0.0.1/x"}}
    assert refused(plain)[0] == "webhook.url"
    private = {**bodies["webhook"], "webhook": {**hook, "url": "https://10.20.30.40/x"}}
    field_, detail = refused(private)
    assert field_ == "webhook.url" and "CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS" in detail
    short = {**bodies["webhook"], "webhook": {**hook, "secret": "short"}}
    assert refused(short)[0] == "webhook.secret"

    ids = create_targets(service, p, bodies)
    conflict = service.call("POST", f"/projects/{p}/targets", json=bodies["webhook"])
    assert conflict.status_code == 409

    unknown = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={
            "issuer": project.issuer_id,
            "common_name": NAME,
            "distribution_targets": [ids["webhook"], "nope"],
        },
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "distribution_targets[1]"

    operator = f"op-{p}@example.test"
    service.ok("POST", f"/projects/{p}/members", 201, json={"email": operator, "role": "operator"})
    forbidden = service.call(
        "POST", f"/projects/{p}/targets", token=service.token_for(operator), json=bodies["local"]
    )
    assert forbidden.status_code == 403

    cert = issue(service, project, list(ids.values()))
    wait_deployed(service, p, cert["id"], cert["current"]["serial"], len(ids))

    # A certificate from the user's own CSR: no targets, no deployment.
    from cryptography.hazmat.primitives.asymmetric import ec

    byo = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "csr_pem": _csr(ec.generate_private_key(ec.SECP256R1()), ["byo.example.test"]),
        },
    )
    put = service.call(
        "PUT", f"/projects/{p}/certificates/{byo['id']}/targets", json={"targets": [ids["local"]]}
    )
    assert put.status_code == 422 and "never distributed" in put.json()["detail"]
    service.wait_for(p, byo["id"], ("issued", "failed"))
    deploy = service.call("POST", f"/projects/{p}/certificates/{byo['id']}/deploy", json={})
    assert deploy.status_code == 409

    secrets = [WEBHOOK_SECRET, VAULT_TOKEN, KUBE_TOKEN, AWS["secret_access_key"], P12_PASSWORD]
    if s.ssh:
        secrets.append(s.ssh.client_key.splitlines()[2])
    listing = service.call("GET", f"/projects/{p}/targets").text
    one = service.call("GET", f"/projects/{p}/targets/{ids['webhook']}").json()
    assert one["credentials"] == ["secret"]
    deployments = service.call("GET", f"/projects/{p}/certificates/{cert['id']}/deployments").text
    timeline = json.dumps(service.timeline(p, cert["id"]))
    stored = _everything_in_database(service)
    logs = _logs(service)
    for secret in secrets:
        for where, text in (
            ("targets API", listing + json.dumps(one)),
            ("deployments API", deployments),
            ("timeline", timeline),
            ("database (ours and DBOS's)", stored),
            ("logs", logs),
        ):
            assert secret not in text, f"a credential leaked into the {where}"

    # Attached to a certificate, a target cannot be deleted: the 409 names the certificate.
    c = f"/projects/{p}/certificates/{cert['id']}"
    refused = service.call("DELETE", f"/projects/{p}/targets/{ids['local']}")
    assert refused.status_code == 409, refused.text
    assert cert["id"] in refused.json()["detail"] and "disable" in refused.json()["detail"]
    # Disabled, it keeps its attachment but receives nothing: a deploy naming it is refused,
    # one naming none leaves it out, and a new version is not sent to it (the timeline says).
    off = service.ok("PATCH", f"/projects/{p}/targets/{ids['local']}", json={"enabled": False})
    assert off["enabled"] is False
    named = service.call("POST", f"{c}/deploy", json={"targets": [ids["local"]], "dry_run": True})
    assert named.status_code == 422, named.text
    assert named.json()["errors"][0]["field"] == "targets[0]" and "disabled" in named.text
    preview = service.ok("POST", f"{c}/deploy", json={"dry_run": True})
    assert ids["local"] not in [r["target"]["id"] for r in preview["results"]]
    attached = service.ok("GET", f"{c}/targets")
    assert {t["id"]: t["enabled"] for t in attached}[ids["local"]] is False
    service.ok("POST", f"{c}/renew", 202)
    assert service.wait_for(p, cert["id"], ("issued", "failed"))["status"] == "issued"

    def skipped() -> list[dict[str, Any]]:
        events = service.timeline(p, cert["id"])["events"]
        return [e for e in events if e["type"] == "distribution.skipped"]

    wait_until(skipped)
    local = service.ok("GET", f"/projects/{p}/targets/{ids['local']}")["name"]
    assert skipped()[-1]["detail"]["targets"] == [local]
    # Detached, it can go.
    others = [t["id"] for t in attached if t["id"] != ids["local"]]
    service.ok("PUT", f"{c}/targets", json={"targets": others})
    gone = service.call("DELETE", f"/projects/{p}/targets/{ids['local']}")
    assert gone.status_code == 204
    left = service.ok("GET", f"{c}/targets")
    assert ids["local"] not in [t["id"] for t in left]


# -- plugins straight against the servers (no service): the failure paths --------------------


def _material(name: str = NAME, *, mismatched_key: bool = False) -> Material:
    cert, key = ds.self_signed(name)
    if mismatched_key:
        key = ds.self_signed(name)[1]
    return Material.from_chain(
        certificate_id="c",
        version_id="v",
        version=1,
        common_name=name,
        names=(name,),
        chain=cert,
        key_pem=key,
    )


def test_haproxy_rolls_back_a_bad_pair_and_keeps_serving(servers: Servers) -> None:
    servers.need("haproxy")
    h = servers.haproxy
    assert h
    before = ds.served_fingerprint(h.port, NAME)
    file_before = h.cert_file.read_bytes()
    target = HaproxyTarget(HaproxyConfig(runtime_api=str(h.socket), cert_file=str(h.cert_file)))
    with pytest.raises(DistributionError) as caught:
        asyncio.run(target.deploy(_material(mismatched_key=True), {}))
    assert "HAProxy" in str(caught.value)
    assert ds.served_fingerprint(h.port, NAME) == before
    assert h.cert_file.read_bytes() == file_before  # nothing written for restarts either
    shown = ds.haproxy_command(h.socket, f"show ssl cert *{h.cert_file}")
    assert "No transaction" in shown or "Transaction" not in shown  # aborted


def test_ssh_refuses_a_host_key_that_is_not_the_pinned_one(servers: Servers) -> None:
    servers.need("ssh")
    ssh = servers.ssh
    assert ssh
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    config = SshConfig(
        host="127.0.0.1",
        port=ssh.ssh_port,
        username="root",
        host_key=other,
        private_key=ssh.client_key,
        files=FilesSpec(directory=str(servers.base)),
    )
    with pytest.raises(DistributionError, match="not the pinned one") as caught:
        asyncio.run(SshTarget(config).deploy(_material(), {}))
    assert not caught.value.retryable
    report = asyncio.run(SshTarget(config).dry_run(_material(), {}))
    assert not report.ok and report.checks[0].name == "connect"


def test_a_failed_rename_leaves_no_temporary_file(servers: Servers) -> None:
    """Files go up under temporary names and are renamed into place; when a rename fails
    (here: a directory sits where ``fullchain.pem`` goes), the deployment fails and the
    temporary files it had not renamed yet are gone, over SSH and on this host alike."""
    from certautopilot.distribution.files import render
    from certautopilot.distribution.targets.local import write_atomically

    servers.need("ssh")
    ssh = servers.ssh
    assert ssh
    for how in ("ssh", "local"):
        directory = servers.base / unique(f"rename-{how}")
        (directory / "fullchain.pem").mkdir(parents=True)
        (directory / "fullchain.pem" / "keep").write_text("in the way")
        files = FilesSpec(directory=str(directory))
        with pytest.raises(DistributionError) as caught:
            if how == "ssh":
                config = SshConfig(
                    host="127.0.0.1",
                    port=ssh.ssh_port,
                    username="root",
                    host_key=ssh.host_key,
                    private_key=ssh.client_key,
                    files=files,
                )
                asyncio.run(SshTarget(config).deploy(_material(), {}))
            else:
                write_atomically(render(_material(), files, None), None, None)
        assert "fullchain.pem" in str(caught.value), how
        left = sorted(f.name for f in directory.iterdir())
        assert not [n for n in left if n.endswith(".tmp")], (how, left)
        assert "cert.pem" in left and "privkey.pem" not in left, (how, left)


def test_a_deploy_removes_what_a_deploy_cut_off_mid_way_left(servers: Servers) -> None:
    """A deploy cut off between its uploads and its renames (a lost connection, a killed
    worker) leaves temporary files it cannot remove; the next deploy of the same files
    removes them, over SSH and on this host, and leaves files that are not its own."""
    from certautopilot.distribution.files import render
    from certautopilot.distribution.targets.local import write_atomically

    servers.need("ssh")
    ssh = servers.ssh
    assert ssh
    for how in ("ssh", "local"):
        directory = servers.base / unique(f"stale-{how}")
        directory.mkdir(parents=True)
        for name in (".chain.pem.0123456789ab.tmp", ".privkey.pem.ba9876543210.tmp"):
            (directory / name).write_text("cut off")
        theirs = [".chain.pem.someone-else.tmp", ".other.pem.0123456789ab.tmp", "notes.tmp"]
        for name in theirs:
            (directory / name).write_text("not ours")
        files = FilesSpec(directory=str(directory))
        if how == "ssh":
            config = SshConfig(
                host="127.0.0.1",
                port=ssh.ssh_port,
                username="root",
                host_key=ssh.host_key,
                private_key=ssh.client_key,
                files=files,
            )
            asyncio.run(SshTarget(config).deploy(_material(), {}))
        else:
            write_atomically(render(_material(), files, None), None, None)
        left = sorted(f.name for f in directory.iterdir() if f.name.endswith(".tmp"))
        assert left == sorted(theirs), (how, left)


def test_vault_check_and_set_refuses_to_overwrite_a_concurrent_write(servers: Servers) -> None:
    servers.need("vault-kv")
    assert servers.bao
    path = f"certs/{unique('cas')}"
    target = VaultKvTarget(VaultKvConfig(address=servers.bao.url, token=VAULT_TOKEN, path=path))
    asyncio.run(target.deploy(_material(), {}))  # version 1
    # Someone else writes version 2 between our read and our write:
    stale = target._current
    target._current = lambda client: (1, {})  # type: ignore[method-assign]
    vault(servers).secrets.kv.v2.create_or_update_secret(
        path=path, secret={"other": "writer"}, mount_point="secret"
    )
    with pytest.raises(DistributionError, match="check-and-set") as caught:
        asyncio.run(target.deploy(_material(), {}))
    assert caught.value.retryable
    target._current = stale  # type: ignore[method-assign]
    result = asyncio.run(target.deploy(_material(), {}))  # the retry reads version 2
    assert result.state == {"version": 3}


def _kubeconfig() -> dict[str, str] | None:
    """Server, CA and bearer token of the current context of $KUBECONFIG, if usable."""
    path = os.environ.get("KUBECONFIG")
    if not path:
        return None
    import yaml  # PyYAML comes with moto[server]

    doc = yaml.safe_load(Path(path.split(":")[0]).read_text())
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
    user = next(u for u in doc["users"] if u["name"] == context["user"])["user"]
    if "token" not in user:
        return None
    ca = cluster.get("certificate-authority-data")
    return {
        "api_server": cluster["server"],
        "token": user["token"],
        "ca_bundle_pem": base64.b64decode(ca).decode() if ca else "",
        "namespace": context.get("namespace", "default"),
    }


def test_kubernetes_secret_on_a_real_cluster_when_kubeconfig_is_set(
    service: Service, project: Project
) -> None:
    """Opt-in: no API server can run here; set KUBECONFIG (a token user) to run it."""
    kube = _kubeconfig()
    if kube is None:
        pytest.skip("opt-in: set KUBECONFIG to a cluster reachable with a bearer token")
    p, name = project.slug, unique("cap-test")
    target = service.ok(
        "POST",
        f"/projects/{p}/targets",
        201,
        json={
            "name": name,
            "kind": "kubernetes-secret",
            "kubernetes_secret": {
                "api_server": kube["api_server"],
                "token": kube["token"],
                "ca_bundle_pem": kube["ca_bundle_pem"] or None,
                "namespace": kube["namespace"],
                "name": name,
            },
        },
    )
    cert = issue(service, project, [target["id"]])
    latest = wait_deployed(service, p, cert["id"], cert["current"]["serial"], 1)
    assert latest["kubernetes-secret"]["status"] == "succeeded", latest


def test_sigkill_after_deploying_recovers_and_records_once(
    service: Service, project: Project, servers: Servers, tmp_path: Path
) -> None:
    """The worker dies after a target got the certificate but before the deployment was
    recorded: the restarted worker deploys again (same delivery id) and records it once."""
    s, p = servers, project.slug
    tag = unique("crash")
    bodies = target_bodies(s, tag)
    ids = create_targets(service, p, {"webhook": bodies["webhook"], "local": bodies["local"]})
    marker = tmp_path / "paused"
    service.stop_worker()
    service.start_worker(
        {"CERTAUTOPILOT_FAULT_PAUSE": "after_deploy", "CERTAUTOPILOT_FAULT_MARKER": str(marker)}
    )
    try:
        created = service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={
                "issuer": project.issuer_id,
                "common_name": NAME,
                "distribution_targets": list(ids.values()),
            },
        )
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "no deployment reached the pause point"
            time.sleep(0.02)
        time.sleep(0.3)  # let the other deployment reach it too
        service.kill_worker()
    finally:
        if service.worker is not None and service.worker.poll() is not None:
            service.start_worker()
    cert = service.wait_for(p, created["id"], ("issued", "failed"))
    latest = wait_deployed(service, p, cert["id"], cert["current"]["serial"], 2, timeout=90)
    assert {k: d["status"] for k, d in latest.items()} == {
        "webhook": "succeeded",
        "local": "succeeded",
    }
    assert len(events(service, p, cert["id"], "cert.distributed")) == 2
    hooks = [h for h in s.receiver.deliveries if h["path"] == f"/hook/{tag}"]
    assert len(hooks) in (1, 2)  # 2 when it was paused after delivering
    assert len({h["headers"]["x-certautopilot-delivery"] for h in hooks}) == 1


def test_target_test_runs_the_real_check_and_writes_nothing(
    service: Service, project: Project, servers: Servers
) -> None:
    p, tag = project.slug, unique("probe")
    bodies = target_bodies(servers, tag)
    directory = servers.base / f"local-{tag}"
    good = service.ok("POST", f"/projects/{p}/targets", 201, json=bodies["local"])
    passed = service.ok("POST", f"/projects/{p}/targets/{good['id']}/test", 200)
    assert passed["ok"] is True
    assert [(s["step"], s["ok"]) for s in passed["steps"]] == [
        ("directory", True),
        ("writable", True),
    ]
    assert any("combined.pem" in w for w in passed["would"])
    assert list(directory.iterdir()) == []  # a test deploys nothing

    gone = servers.base / f"local-gone-{tag}"
    gone.mkdir()
    body = {
        "name": f"gone-{tag}",
        "kind": "local",
        "local": {"files": {"directory": str(gone)}},
    }
    bad = service.ok("POST", f"/projects/{p}/targets", 201, json=body)
    gone.rmdir()
    failed = service.ok("POST", f"/projects/{p}/targets/{bad['id']}/test", 200)
    assert failed["ok"] is False
    assert failed["steps"] == [{"step": "directory", "ok": False, "detail": f"{gone} missing"}]

    # With a post-deploy check: a TLS handshake with its host (the webhook receiver answers
    # TLS), and in words when nothing listens there.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    for name, port, ok in (("tls", servers.webhook_port, True), ("dead", closed_port, False)):
        checked = service.ok(
            "POST",
            f"/projects/{p}/targets",
            201,
            json={
                **bodies["local"],
                "name": f"{name}-{tag}",
                "post_deploy_check": {"host": "127.0.0.1", "port": port},
            },
        )
        out = service.ok("POST", f"/projects/{p}/targets/{checked['id']}/test", 200)
        step = out["steps"][-1]
        assert (out["ok"], step["step"], step["ok"]) == (ok, "post-deploy check", ok), out
        assert (
            f"127.0.0.1:{port} answers TLS" if ok else f"no TLS handshake with 127.0.0.1:{port}"
        ) in step["detail"]

    hook = service.ok("POST", f"/projects/{p}/targets", 201, json=bodies["webhook"])
    tested = service.call("POST", f"/projects/{p}/targets/{hook['id']}/test")
    assert tested.status_code == 200 and WEBHOOK_SECRET not in tested.text

    operator = f"op-probe-{tag}@example.test"
    service.ok("POST", f"/projects/{p}/members", 201, json={"email": operator, "role": "operator"})
    forbidden = service.call(
        "POST", f"/projects/{p}/targets/{good['id']}/test", token=service.token_for(operator)
    )
    assert forbidden.status_code == 403
