"""Distribution end to end: real issuance from Pebble fans out to real servers.

Started once for this module (temp dirs, free ports, stopped by pid): OpenSSH with nginx
behind it, HAProxy with its admin socket, moto's standalone server (ACM), an OpenBao dev
server (Vault KV v2), a TLS webhook receiver, and an HTTP fake of the Kubernetes Secrets
API (no real API server can run here). A kind whose server cannot start here is skipped
with the reason; the others still run.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from certautopilot.distribution.targets.webhook import verify
from tests.conftest import Project, Service
from tests.integration import distribution_servers as ds

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


@dataclass
class Servers:
    base: Path
    ssh: ds.SshNginx | None = None
    haproxy: ds.Haproxy | None = None
    moto: ds.Process | None = None
    bao: ds.Process | None = None
    webhook_port: int = 0
    webhook_ca: str = ""
    receiver: ds.WebhookReceiver = field(default_factory=ds.WebhookReceiver)
    kube_port: int = 0
    kube: ds.KubeFake = field(default_factory=lambda: ds.KubeFake(KUBE_TOKEN))
    missing: dict[str, str] = field(default_factory=dict)

    def need(self, *kinds: str) -> None:
        for kind in kinds:
            if kind in self.missing:
                pytest.skip(f"{kind}: {self.missing[kind]}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("targets")
    s = Servers(base)
    starters = {
        "ssh": lambda: setattr(s, "ssh", ds.start_ssh_nginx(base / "ssh", NAME)),
        "haproxy": lambda: setattr(s, "haproxy", ds.start_haproxy(base / "haproxy", NAME)),
        "aws-acm": lambda: setattr(s, "moto", ds.start_moto(base / "moto")),
        "vault-kv": lambda: setattr(s, "bao", ds.start_openbao(base / "bao", VAULT_TOKEN)),
    }
    for kind, start in starters.items():
        try:
            start()
        except (FileNotFoundError, RuntimeError) as exc:
            s.missing[kind] = f"server could not be started here: {exc}"
    cert, key = ds.self_signed("127.0.0.1")
    (base / "hook.pem").write_text(cert)
    (base / "hook.key").write_text(key)
    s.webhook_ca = cert
    try:
        with (
            ds.http_server(s.receiver.handle, tls=(base / "hook.pem", base / "hook.key")) as wp,
            ds.http_server(s.kube.handle) as kp,
        ):
            s.webhook_port, s.kube_port = wp, kp
            yield s
    finally:
        for proc in [*(s.ssh.procs if s.ssh else [])]:
            ds.stop(proc)
        for one in (s.haproxy, s.moto, s.bao):
            if one is not None:
                ds.stop(one.proc)


# -- helpers -----------------------------------------------------------------------------


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
    """Latest deployment per target once each of ``count`` targets finished ``serial``."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        body = service.ok("GET", f"/projects/{p}/certificates/{cert_id}/deployments")
        latest = {
            i["target"]["kind"]: i["latest"]
            for i in body["items"]
            if i["latest"] and i["latest"]["serial"] == serial
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
    bodies = target_bodies(s, "fan")
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
    _check_every_kind(service, s, p, cert["id"], serial, chain, leaf_fp, ids, first=True)
    arn = latest["aws-acm"]["result"]["certificate_arn"] if "aws-acm" in latest else None

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
    _check_every_kind(
        service, s, p, cert["id"], serial2, chain2, ds.fingerprint_of(chain2), ids, first=False
    )
    if arn:
        assert latest2["aws-acm"]["result"]["certificate_arn"] == arn
        assert len(acm(s).list_certificates()["CertificateSummaryList"]) == 1


def _check_every_kind(
    service: Service,
    s: Servers,
    p: str,
    cert_id: str,
    serial: str,
    chain: str,
    leaf_fp: str,
    ids: dict[str, str],
    *,
    first: bool,
) -> None:
    if s.ssh:
        # nginx was reloaded over SSH and now serves the new certificate.
        assert ds.served_fingerprint(s.ssh.https_port, NAME) == leaf_fp
        d = s.ssh.cert_dir
        assert (d / "fullchain.pem").read_text() == chain
        assert stat.S_IMODE((d / "privkey.pem").stat().st_mode) == 0o600
        assert stat.S_IMODE((d / "cert.pem").stat().st_mode) == 0o644
        key, leaf, cas = pkcs12.load_key_and_certificates(
            (d / "bundle.p12").read_bytes(), P12_PASSWORD.encode()
        )
        assert key is not None and leaf is not None and cas
        assert format(leaf.serial_number, "x") == serial
        assert not [f for f in os.listdir(d) if f.endswith(".tmp")]
    local = (s.base / "local-fan" / "combined.pem").read_text()
    assert local.startswith(chain) and "PRIVATE KEY" in local
    if s.haproxy:
        assert ds.served_fingerprint(s.haproxy.port, NAME) == leaf_fp
        assert s.haproxy.cert_file.read_text().startswith(chain)
    hooks = [h for h in s.receiver.deliveries if h["path"] == "/hook/fan"]
    hook = hooks[-1]
    h = hook["headers"]
    assert verify(
        WEBHOOK_SECRET, h["x-certautopilot-timestamp"], hook["body"], h["x-certautopilot-signature"]
    )
    payload = json.loads(hook["body"])
    assert payload["serial"] == serial and payload["fullchain_pem"] == chain
    assert "key_pem" not in payload  # not enabled on this target
    if s.moto:
        arns = acm(s).list_certificates()["CertificateSummaryList"]
        assert len(arns) == 1
        described = acm(s).describe_certificate(CertificateArn=arns[0]["CertificateArn"])
        assert _moto_serial(described["Certificate"]["Serial"]) == int(serial, 16)
    if s.bao:
        read = vault(s).secrets.kv.v2.read_secret_version(path="certs/fan", mount_point="secret")
        assert read["data"]["data"]["serial"] == serial
        assert read["data"]["metadata"]["version"] == (1 if first else 2)
        assert "PRIVATE KEY" in read["data"]["data"]["private_key"]
    secret = s.kube.secrets[("web", "tls-fan")]
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == chain
    assert "PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"]).decode()


def _moto_serial(value: str) -> int:
    """moto prints the serial in decimal (ACM uses colon-separated hex)."""
    return int(value.replace(":", ""), 16) if ":" in value else int(value)
