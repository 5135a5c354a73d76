"""A third-party plugin distribution is found by its entry points alone.

``tests/plugins/certautopilot-example-plugin`` registers a DNS provider and a target; it
is installed with pip into a directory of its own, and a fresh Python process with that
directory on ``PYTHONPATH`` lists both (CLI and API) and accepts a zone that names the
provider: no change to the core, no import of the plugin by the core.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PLUGIN = Path(__file__).parents[1] / "plugins" / "certautopilot-example-plugin"
SOURCE = "certautopilot-example-plugin"

# Runs in the child process: the app, its database and a signed-in admin, then the calls.
APP_PROBE = r"""
import json, sys
from fastapi.testclient import TestClient
from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction

settings = Settings.from_env()
upgrade(settings)
engine = make_engine(settings)
with transaction(make_sessionmaker(engine)) as session:
    admin = auth.ensure_user(session, email="a@example.test", instance_admin=True)
    token = tokens.create_token(session, user=admin)
engine.dispose()
h = {"Authorization": f"Bearer {token}"}
out = {}
with TestClient(create_app(settings)) as c:
    out["plugins"] = c.get("/api/v1/plugins", headers=h).json()
    out["dns_providers"] = c.get("/api/v1/dns-providers", headers=h).json()
    out["openapi"] = c.get("/openapi.json").json()["components"]["schemas"]
    c.post("/api/v1/projects", headers=h, json={"slug": "ex", "name": "Ex"})
    zone = {"name": "example.test", "provider": "example-dns",
            "settings": {"endpoint": "https://dns.example.test", "api_token": "tok-123456"}}
    r = c.post("/api/v1/projects/ex/zones", headers=h, json=zone)
    out["zone"] = [r.status_code, r.json()]
    r = c.post("/api/v1/projects/ex/zones", headers=h,
               json={**zone, "name": "other.test", "settings": {"endpoint": "x"}})
    out["zone_missing_secret"] = [r.status_code, r.json()]
    target = {"name": "ex", "kind": "example-target",
              "example_target": {"label": "somewhere", "password": "pw-123456"}}
    r = c.post("/api/v1/projects/ex/targets", headers=h, json=target)
    out["target"] = [r.status_code, r.json()]
    r = c.post("/api/v1/projects/ex/targets", headers=h,
               json={**target, "name": "ex2", "example_target": {"label": "forbidden",
                                                                 "password": "p"}})
    out["target_refused"] = [r.status_code, r.json()]
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example distribution, pip-installed (no deps) into a directory of its own."""
    work = tmp_path_factory.mktemp("example-plugin")
    source = work / "src"
    shutil.copytree(PLUGIN, source)  # the build leaves files beside the sources
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def _env(plugin_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(plugin_path), **extra}


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_the_cli_lists_the_plugins_with_their_schema(plugin_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "plugins", "--output", "json"],
        env=_env(plugin_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout)
    dns = _by_name(found["dns_providers"])["example-dns"]
    target = _by_name(found["targets"])["example-target"]
    assert (dns["source"], target["source"]) == (SOURCE, SOURCE)
    assert dns["title"] == "Example DNS (in memory)"
    assert dns["config_schema"]["properties"]["api_token"]["secret"] is True
    assert "secret" not in dns["config_schema"]["properties"]["endpoint"]
    assert target["config_schema"]["properties"]["password"]["secret"] is True
    # The core's own plugins are listed beside them, from the same registry.
    assert _by_name(found["dns_providers"])["rfc2136"]["source"] == "certautopilot"
    table = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "plugins"],
        env=_env(plugin_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert any("example-dns" in line and SOURCE in line for line in table.splitlines())


def test_the_api_lists_and_uses_the_plugins(plugin_path: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", APP_PROBE],
        env=_env(
            plugin_path,
            CERTAUTOPILOT_DATA_DIR=str(tmp_path / "data"),
            CERTAUTOPILOT_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    dns = _by_name(out["plugins"]["dns_providers"])["example-dns"]
    assert dns["source"] == SOURCE
    assert dns["config_schema"]["properties"]["api_token"]["secret"] is True
    assert _by_name(out["plugins"]["targets"])["example-target"]["source"] == SOURCE
    # The API schema is built from the registry: the new kind and provider are in it.
    target_in = out["openapi"]["TargetIn"]["properties"]
    assert "example-target" in target_in["kind"]["enum"]
    assert target_in["example_target"]["properties"]["password"]["secret"] is True
    zone_in = out["openapi"]["ZoneIn"]["properties"]
    assert "example-dns" in zone_in["provider"]["enum"]
    assert "example-dns" in [s["title"] for s in zone_in["settings"]["anyOf"]]
    fields = _by_name(_by_name(out["dns_providers"])["example-dns"]["fields"])
    assert fields["api_token"] == {
        "name": "api_token",
        "required": True,
        "secret": True,
        "help": "the API token",
    }
    assert fields["endpoint"]["secret"] is False

    status, zone = out["zone"]
    assert status == 201, zone
    assert zone["provider"] == "example-dns"
    assert zone["settings"] == {"endpoint": "https://dns.example.test"}
    assert zone["credentials"] == ["api_token"]
    assert "tok-123456" not in json.dumps(out)
    status, problem = out["zone_missing_secret"]
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["settings.api_token"]

    status, target = out["target"]
    assert status == 201, target
    assert (target["kind"], target["config"], target["credentials"]) == (
        "example-target",
        {"label": "somewhere"},
        ["password"],
    )
    status, problem = out["target_refused"]
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["example_target.label"]
