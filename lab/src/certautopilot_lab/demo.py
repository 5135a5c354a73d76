"""``certautopilot demo``: the local lab, the service, and one real certificate, end to end.

The command comes with this distribution (entry point ``certautopilot.cli``), not with the
product: it starts Pebble and BIND, which a production install has no use for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from certautopilot.config import Settings, child_environ
from certautopilot.errors import ConfigError
from certautopilot_lab.core import lab_status, start_lab, start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import LabInfo

ADMIN_EMAIL = "admin@demo.test"


def _start_lab(lab_dir: Path) -> LabInfo:
    running = lab_status(lab_dir)
    if running is not None:
        return running
    try:
        return start_lab(lab_dir)
    except ConfigError as exc:
        typer.echo(f"default lab ports are busy ({exc}); using free ports", err=True)
        return start_lab_on_free_ports(lab_dir)


def _api(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, "/api/v1" + path, **kwargs)
    if response.status_code >= 400:
        raise typer.Exit(_fail(f"{method} {path} answered {response.status_code}: {response.text}"))
    return response.json()


def _fail(message: str) -> int:
    typer.secho(message, fg="red", err=True)
    return 1


def _ensure_project(client: httpx.Client, lab: LabInfo) -> tuple[str, str]:
    slug = "demo"
    projects = {p["slug"] for p in _api(client, "GET", "/projects")}
    if slug not in projects:
        _api(client, "POST", "/projects", json={"slug": slug, "name": "Demo project"})
    issuers = [
        i
        for i in _api(client, "GET", f"/projects/{slug}/issuers")
        if i["acme"] and i["acme"]["directory_url"] == lab.directory_url
    ]
    if issuers:
        issuer_id = issuers[0]["id"]
    else:
        issuer_id = _api(
            client,
            "POST",
            f"/projects/{slug}/issuers",
            json={
                "name": f"pebble-{lab.acme_port}-{int(time.time())}",
                "kind": "acme",
                "acme": {
                    "directory_url": lab.directory_url,
                    "contact_email": "ops@example.test",
                    "terms_agreed": True,
                    "ca_bundle_pem": lab.ca_bundle_path.read_text(),
                },
            },
        )["id"]
    zones = {z["name"] for z in _api(client, "GET", f"/projects/{slug}/zones")}
    if "example.test" not in zones:
        _api(
            client,
            "POST",
            f"/projects/{slug}/zones",
            json={
                "name": "example.test",
                "provider": "rfc2136",
                "nameservers": [f"127.0.0.1:{lab.dns_port}"],
                "rfc2136": {
                    "server": "127.0.0.1",
                    "port": lab.dns_port,
                    "tsig_name": lab.tsig_name,
                    "tsig_algorithm": lab.tsig_algorithm,
                    "tsig_secret": lab.tsig_secret,
                },
            },
        )
    if "manual.test" not in zones:
        _api(
            client,
            "POST",
            f"/projects/{slug}/zones",
            json={
                "name": "manual.test",
                "provider": "manual",
                "nameservers": [f"127.0.0.1:{lab.dns_port}"],
            },
        )
    return slug, issuer_id


def _token(env: dict[str, str]) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "certautopilot.cli",
            "token",
            "create",
            "--email",
            ADMIN_EMAIL,
            "--instance-admin",
            "--name",
            "demo",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _invite(env: dict[str, str]) -> str:
    """A one-time sign-in link for the demo's admin (``certautopilot user invite``)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "certautopilot.cli",
            "user",
            "invite",
            "--email",
            ADMIN_EMAIL,
            "--instance-admin",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` already: the demo would otherwise wait
    for, and talk to, whatever answers there instead of the service it started."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def demo(
    host: str = typer.Option("127.0.0.1", help="Address for the service."),
    port: int = typer.Option(8000, help="Port for the service (make demo PORT=8001)."),
) -> None:
    """Start the local ACME lab and the service, issue one real certificate, keep serving."""
    run_demo(host, port)


def url_of(host: str, port: int) -> str:
    """The URL a browser on this machine opens: a wildcard listen address (0.0.0.0, ::) is
    not one, so the printed links name the loopback address instead."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def run_demo(host: str, port: int) -> None:
    if port_taken(host, port):
        raise typer.Exit(
            _fail(
                f"Something already answers on {host}:{port}; the demo will not talk to it.\n"
                f"Stop it, or choose another port: make demo PORT={port + 1}"
            )
        )
    settings = Settings.from_env()
    lab_dir = settings.data_dir / "lab"
    typer.echo(f"Starting the local ACME lab (Pebble + BIND 9) in {lab_dir} ...")
    lab = _start_lab(lab_dir)
    env = child_environ({"CERTAUTOPILOT_DATA_DIR": str(settings.data_dir)})
    env.setdefault("CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")
    base = url_of(host, port)
    env.setdefault("CERTAUTOPILOT_PUBLIC_URL", base)
    token = _token(env)
    invite = _invite(env)
    typer.echo(f"Starting the service on {base} (SQLite under {settings.data_dir}) ...")
    server = subprocess.Popen(
        [sys.executable, "-m", "certautopilot.cli", "serve", "--host", host, "--port", str(port)],
        env=env,
        start_new_session=True,
    )
    try:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            _wait_healthy(client, server)
            slug, issuer_id = _ensure_project(client, lab)
            name = f"www-{int(time.time())}.example.test"
            cert = _api(
                client,
                "POST",
                f"/projects/{slug}/certificates",
                json={
                    "issuer": issuer_id,
                    "common_name": name,
                    "sans": ["api.example.test"],
                },
            )
            typer.echo(f"Requested {name} (+ api.example.test); waiting for Pebble ...")
            body = _wait_issued(client, slug, cert["id"])
        _summary(base, token, invite, slug, body, lab)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(server)
        stop_lab(lab_dir)


def _wait_healthy(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise typer.Exit(_fail("the service exited during start-up; see its output above"))
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise typer.Exit(_fail("the service did not answer /healthz within 60 s"))


def _wait_issued(client: httpx.Client, slug: str, cert_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = _api(client, "GET", f"/projects/{slug}/certificates/{cert_id}")
        if body["status"] == "issued":
            return body
        if body["status"] == "failed":
            raise typer.Exit(_fail(f"issuance failed: {body['error']}"))
        time.sleep(0.1)
    raise typer.Exit(_fail("the certificate was not issued within 120 s"))


def _summary(
    base: str, token: str, invite: str, slug: str, body: dict[str, Any], lab: LabInfo
) -> None:
    path = f"/api/v1/projects/{slug}/certificates/{body['id']}"
    typer.secho("\nIssued a real certificate from Pebble through BIND.", fg="green", bold=True)
    typer.echo(f"""
  Service         {base}   (OpenAPI: {base}/docs)
  API token       {token}
  Project         {slug}
  Certificate id  {body["id"]}
  Names           {", ".join(body["sans"])}
  Serial          {body["current"]["serial"]}
  Valid until     {body["current"]["not_after"]}
  Renews at       {(body["renewal"] or {}).get("next_at")}

Try:
  export TOKEN={token}
  curl -s -H "Authorization: Bearer $TOKEN" {base}{path} | python3 -m json.tool
  curl -s -H "Authorization: Bearer $TOKEN" {base}{path}/timeline | python3 -m json.tool
  curl -s -H "Authorization: Bearer $TOKEN" {base}{path}/fullchain.pem | openssl x509 -noout -text

Web UI: open this one-time sign-in link, choose a password for {ADMIN_EMAIL}:
  {invite}
  (it works once, for 7 days; then sign in at {base}/login. A new link:
   .venv/bin/certautopilot user invite --email {ADMIN_EMAIL})

Lab: ACME directory {lab.directory_url}, DNS 127.0.0.1:{lab.dns_port}.
The service keeps running; press Ctrl-C to stop it and the lab.
""")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
