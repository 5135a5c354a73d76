"""``certautopilot backup`` while the service runs, ``restore`` elsewhere: the same key and
certificate download from the restored instance, and its worker resumes a workflow that
was waiting on an approver (then issues on the lab's Pebble)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from certautopilot.app import create_app
from certautopilot.config import Settings
from certautopilot.db.migrate import alembic_config
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project, fresh_database, issue_one


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _env(service: Service, data_dir: Path, database_url: str) -> dict[str, str]:
    return {
        **service.env,
        "CERTAUTOPILOT_DATA_DIR": str(data_dir),
        "CERTAUTOPILOT_DATABASE_URL": database_url,
    }


@pytest.fixture
def elsewhere(service: Service, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An empty data directory and an empty database of the service's kind."""
    data_dir = tmp_path / "restored"
    data_dir.mkdir()
    backend = "sqlite" if service.settings.is_sqlite else "postgresql"
    with fresh_database(backend, data_dir, prefix="cap_restore") as url:
        yield data_dir, url


def test_backup_then_restore_elsewhere(
    service: Service, lab: LabInfo, tmp_path: Path, elsewhere: tuple[Path, str]
) -> None:
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    issued = issue_one(service, project, "backed-up.example.test")
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    tokens = {}
    for who, role in (("op", "operator"), ("approver", "approver")):
        email = f"{who}-{p}@example.test"
        service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": role})
        tokens[who] = service.token_for(email)
    waiting = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        token=tokens["op"],
        json={"issuer": project.issuer_id, "common_name": "after-restore.example.test"},
    )
    assert waiting["status"] == "awaiting_approval"
    request_id = waiting["approval_request"]["id"]
    files = {
        what: service.call("GET", f"/projects/{p}/certificates/{issued}/versions/1/{what}.pem")
        for what in ("key", "chain")
    }
    assert all(r.status_code == 200 for r in files.values())

    # Back up while the service and its worker run.
    where = tmp_path / "backup"
    done = _cli(service.env, "backup", str(where))
    assert done.returncode == 0, done.stderr
    assert "The KEK is not in this backup" in done.stderr
    manifest = json.loads((where / "manifest.json").read_text())
    assert manifest["database"] == ("sqlite" if service.settings.is_sqlite else "postgresql")
    assert manifest["counts"]["certificates"] >= 2
    heads = ScriptDirectory.from_config(alembic_config(service.settings)).get_heads()
    assert manifest["schema_heads"] == heads  # the schema's revision, for the restore to check
    kek_file = service.settings.data_dir / "kek.key"
    kek_text = kek_file.read_text().strip()
    for path in where.iterdir():
        assert kek_text.encode() not in path.read_bytes(), path

    # A restore without the KEK is refused (a new, different key would be created).
    no_kek_dir = tmp_path / "no-kek"
    no_kek_dir.mkdir()
    refused = _cli(
        _env(service, no_kek_dir, f"sqlite:///{no_kek_dir / 'c.db'}"), "restore", str(where)
    )
    assert refused.returncode == 1
    if service.settings.is_sqlite:
        assert "the KEK cannot unwrap secret" in refused.stderr
    else:  # and a backup of PostgreSQL goes into PostgreSQL only
        assert "names a sqlite one" in refused.stderr

    # The operator puts the KEK in place, then restores into the empty database.
    data_dir, database_url = elsewhere
    shutil.copy(kek_file, data_dir / "kek.key")
    env = _env(service, data_dir, database_url)
    done = _cli(env, "restore", str(where))
    assert done.returncode == 0, done.stderr
    assert "the KEK unwraps all" in done.stdout
    again = _cli(env, "restore", str(where))
    assert again.returncode == 1 and "not empty" in again.stderr

    # The restored instance: the same files, and its worker (under the backed-up executor
    # id) resumes the issuance that waits on the approver.
    settings = Settings.from_env(env)
    log = (tmp_path / "restored-worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "certautopilot.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with TestClient(create_app(settings)) as client:

            def call(method: str, path: str, token: str, **kw: Any) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"}
                return client.request(method, "/api/v1" + path, headers=headers, **kw)

            for what, original in files.items():
                got = call(
                    "GET",
                    f"/projects/{p}/certificates/{issued}/versions/1/{what}.pem",
                    service.admin_token,
                )
                assert got.status_code == 200 and got.text == original.text, what
            decided = call(
                "POST",
                f"/projects/{p}/requests/{request_id}/approve",
                tokens["approver"],
                json={},
            )
            assert decided.status_code == 200, decided.text
            deadline = time.monotonic() + 90
            while True:
                body = call("GET", f"/projects/{p}/certificates/{waiting['id']}", tokens["op"])
                status = body.json()["status"]
                if status in ("issued", "failed"):
                    break
                assert worker.poll() is None, (tmp_path / "restored-worker.log").read_text()
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            assert status == "issued", body.json()
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    # The original instance was not touched: its request still waits.
    assert service.ok("GET", f"/projects/{p}/certificates/{waiting['id']}")["status"] == (
        "awaiting_approval"
    )
