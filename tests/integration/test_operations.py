"""Operating a running ``certautopilot serve``: ``/readyz``, ``/metrics`` after a real
issuance on the lab, and JSON log lines at DEBUG that carry their context and no secret.

One ``serve`` (the API and one worker child, as an operator runs it) per database
backend, with ``CERTAUTOPILOT_LOG_FORMAT=json`` and ``CERTAUTOPILOT_LOG_LEVEL=DEBUG``; the
tests read its combined log file and scrape it over HTTP like Prometheus does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from certautopilot.config import Settings
from certautopilot_lab import free_port
from certautopilot_lab.info import UNLIMITED_BUDGET_ENV, LabInfo
from tests.conftest import backends, create_project, fresh_database
from tests.integration.live_server import admin_token, prepared_settings

METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
DB_PASSWORD = "db-" + uuid.uuid4().hex
PASSWORD = "correct horse battery staple " + uuid.uuid4().hex[:8]


@dataclass
class Serve:
    """A ``certautopilot serve`` subprocess and an HTTP client with an admin's token."""

    url: str
    token: str
    log: Path
    data_dir: Path
    settings: Settings
    proc: subprocess.Popen[bytes]
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, "/api/v1" + path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def wait_ended(self, slug: str, cert_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while True:
            body: dict[str, Any] = self.ok("GET", f"/projects/{slug}/certificates/{cert_id}")
            if body["status"] in ("issued", "failed"):
                return body
            assert self.proc.poll() is None, self.log.read_text()[-4000:]
            assert time.monotonic() < deadline, body
            time.sleep(0.05)

    def wait_issued(self, slug: str, cert_id: str) -> dict[str, Any]:
        body = self.wait_ended(slug, cert_id)
        assert body["status"] == "issued", body["error"]
        return body

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = self.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(response.text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def log_lines(self) -> list[dict[str, Any]]:
        lines = [line for line in self.log.read_text().splitlines() if line.strip()]
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"a log line is not JSON: {line[:300]!r}")
        return parsed


def _wait_ready(serve: Serve) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert serve.proc.poll() is None, serve.log.read_text()[-4000:]
        try:
            response = serve.http.get("/readyz")
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        body = response.json()
        if response.status_code == 200:
            return body
        time.sleep(0.1)
    pytest.fail(f"serve never became ready: {body}")


@pytest.fixture(scope="module", params=backends())
def serve(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, lab: LabInfo
) -> Iterator[Serve]:
    data_dir = tmp_path_factory.mktemp("ops")
    with fresh_database(request.param, data_dir, prefix="cap_ops") as database_url:
        if request.param == "postgresql":
            # A password in the URL (the test server trusts local connections and ignores
            # it): the logs must not show it, whoever prints the URL.
            database_url = database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
        settings = prepared_settings(database_url, data_dir)
        token = admin_token(settings, PASSWORD)
        port = free_port()
        log = data_dir / "serve.log"
        env = {
            **os.environ,
            **UNLIMITED_BUDGET_ENV,
            "CERTAUTOPILOT_DATA_DIR": str(data_dir),
            "CERTAUTOPILOT_DATABASE_URL": database_url,
            "CERTAUTOPILOT_EXECUTOR_ID": "ops",
            "CERTAUTOPILOT_LOG_LEVEL": "DEBUG",
            "CERTAUTOPILOT_LOG_FORMAT": "json",
            "CERTAUTOPILOT_METRICS_TOKEN": METRICS_TOKEN,
            "CERTAUTOPILOT_WORKER_HEARTBEAT_SECONDS": "1",
            "CERTAUTOPILOT_LOCAL_TARGET_ROOTS": str(data_dir),
            "CERTAUTOPILOT_LOCAL_TARGET_COMMANDS": "1",
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "certautopilot.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        found = Serve(f"http://127.0.0.1:{port}", token, log, data_dir, settings, proc)
        try:
            _wait_ready(found)
            yield found
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            found.http.close()


@dataclass(frozen=True)
class Issued:
    slug: str
    cert_ids: tuple[str, ...]
    not_after: tuple[datetime, ...]
    key_pem: str
    failed_id: str


@pytest.fixture(scope="module")
def issued(serve: Serve, lab: LabInfo) -> Issued:
    """Through the live service: two certificates issued by Pebble, the first deployed to
    two local targets (one whose reload command fails), one certificate that fails (BIND
    refuses its zone's key), and one waiting on an approver (the policy asks for approval
    after the others)."""
    project = create_project(serve, lab, manual_zone=False)  # type: ignore[arg-type]
    targets = [
        serve.ok("POST", f"/projects/{project.slug}/targets", 201, json=body)["id"]
        for body in _local_targets(serve.data_dir)
    ]
    ids, not_after = [], []
    for name, to in (("ops-a.example.test", targets), ("ops-b.example.test", [])):
        cid = serve.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": name, "distribution_targets": to},
        )["id"]
        body = serve.wait_issued(project.slug, cid)
        ids.append(cid)
        not_after.append(datetime.fromisoformat(body["current"]["not_after"]))
    _wait_deployments_end(serve, project.slug, ids[0], len(targets))
    _add_refused_zone(serve, lab, project.slug)
    failed_id = serve.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "ops.refused.test"},
    )["id"]
    assert serve.wait_ended(project.slug, failed_id)["status"] == "failed"
    key_pem = serve.call("GET", f"/projects/{project.slug}/certificates/{ids[0]}/key.pem").text
    rules = serve.ok("GET", f"/projects/{project.slug}/policy")["rules"]
    serve.ok(
        "PUT",
        f"/projects/{project.slug}/policy",
        json={**rules, "approval_required": True},
    )
    waiting = serve.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "ops-c.example.test"},
    )
    assert waiting["status"] == "awaiting_approval", waiting
    return Issued(project.slug, tuple(ids), tuple(not_after), key_pem, failed_id)


def _local_targets(data_dir: Path) -> list[dict[str, Any]]:
    good, bad = data_dir / "deployed", data_dir / "deployed-broken"
    good.mkdir()
    bad.mkdir()
    return [
        {"name": "files", "kind": "local", "local": {"files": {"directory": str(good)}}},
        {
            "name": "broken-reload",
            "kind": "local",
            "local": {"files": {"directory": str(bad)}, "reload_command": "exit 3"},
        },
    ]


def _wait_deployments_end(serve: Serve, slug: str, cert_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        body = serve.ok("GET", f"/projects/{slug}/certificates/{cert_id}/deployments")
        ended = [
            i
            for i in body["items"]
            if i["latest"] and i["latest"]["status"] in ("succeeded", "failed")
        ]
        if len(ended) == count:
            return
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def _add_refused_zone(serve: Serve, lab: LabInfo, slug: str) -> None:
    """A zone whose TSIG key BIND refuses, stored through the zone service without the
    check the API makes at its server (it stands for a key revoked after the zone was
    added; tests/conftest.py add_refused_zone does the same for the in-process service)."""
    import sqlalchemy as sa

    from certautopilot.auth import service as auth
    from certautopilot.crypto.kek import load_kek
    from certautopilot.db.session import make_engine, make_sessionmaker, transaction
    from certautopilot.dns import service as zones
    from certautopilot.dns.schemas import ZoneIn
    from certautopilot.projects.models import Project as ProjectRow
    from tests.conftest import WRONG_TSIG_SECRET

    body = ZoneIn.model_validate(
        {
            "name": "refused.test",
            "provider": "rfc2136",
            "nameservers": [f"127.0.0.1:{lab.dns_port}"],
            "propagation_timeout_seconds": 5,
            "rfc2136": {
                "server": "127.0.0.1",
                "port": lab.dns_port,
                "tsig_name": lab.tsig_name,
                "tsig_algorithm": lab.tsig_algorithm,
                "tsig_secret": WRONG_TSIG_SECRET,
            },
        }
    )
    engine = make_engine(serve.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            project_id = session.scalar(sa.select(ProjectRow.id).where(ProjectRow.slug == slug))
            assert project_id is not None
            user = auth.ensure_user(session, email="admin@example.test")
            admin = auth.Actor(user_id=user.id, email=user.email, role="admin")
            plan = zones.plan_new_zone(session, project_id=project_id, body=body)
            kek = load_kek(serve.settings)
            zones.create_zone(session, kek, project_id=project_id, plan=plan, actor=admin)
    finally:
        engine.dispose()


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# -- /readyz ---------------------------------------------------------------------------


def test_readyz_says_ready_and_names_each_check(serve: Serve) -> None:
    response = serve.http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "migrations", "workers", "kek"}
    assert all(c["ok"] for c in body["checks"].values())
    assert "ops-1" in body["checks"]["workers"]["detail"]
    assert serve.http.get("/healthz").json() == {"status": "ok"}


# -- /metrics --------------------------------------------------------------------------


def test_metrics_need_the_token(serve: Serve) -> None:
    assert serve.http.get("/metrics").status_code == 401
    wrong = serve.http.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert METRICS_TOKEN not in wrong.text


def test_metrics_after_a_real_issuance(serve: Serve, issued: Issued) -> None:
    samples = serve.scrape()
    slug = issued.slug
    # Certificates by project and status, read from the database at scrape time.
    assert _value(samples, "certautopilot_certificates", project=slug, status="issued") == 2
    assert (
        _value(samples, "certautopilot_certificates", project=slug, status="awaiting_approval") == 1
    )
    assert _value(samples, "certautopilot_workflows_waiting", waiting_for="approval") == 1
    assert _value(samples, "certautopilot_workflows_waiting", waiting_for="manual_dns") == 0
    # The worker's histogram, from its multiprocess files: both issuances, both issued.
    count = _value(
        samples,
        "certautopilot_issuance_duration_seconds_count",
        issuer_kind="acme",
        outcome="issued",
    )
    assert count == 2
    total = _value(
        samples, "certautopilot_issuance_duration_seconds_sum", issuer_kind="acme", outcome="issued"
    )
    assert total is not None and 0 < total < 180
    # ... and the one that failed, by the problem the failure named (a bounded label).
    assert (
        _value(
            samples,
            "certautopilot_issuance_duration_seconds_count",
            issuer_kind="acme",
            outcome="failed",
        )
        == 1
    )
    failures = {
        dict(labels)["problem"]: v
        for (name, labels), v in samples.items()
        if name == "certautopilot_issuance_failures_total"
    }
    assert sum(failures.values()) == 1, failures
    assert _value(samples, "certautopilot_certificates", project=slug, status="failed") == 1
    # Deployments by target kind and outcome: one succeeded, one failed for good.
    for outcome in ("succeeded", "failed"):
        got = _value(
            samples, "certautopilot_deployments_total", target_kind="local", outcome=outcome
        )
        assert got == 1, outcome
    # Expiry: the earliest not_after of the project, and the expiring-within counts.
    earliest = _value(samples, "certautopilot_certificate_expiry_timestamp_seconds", project=slug)
    assert earliest == min(issued.not_after).timestamp()
    today = datetime.now(UTC).date()
    for within, days in (("1d", 1), ("7d", 7), ("14d", 14), ("30d", 30)):
        expected = sum(1 for n in issued.not_after if n.date() <= today + timedelta(days=days))
        got = _value(samples, "certautopilot_certificates_expiring", project=slug, within=within)
        assert got == expected, within
    assert (
        _value(samples, "certautopilot_certificates_expiring", project=slug, within="expired") == 0
    )
    assert _value(samples, "certautopilot_renewal_backlog") == 0
    # The worker's heartbeat, a few seconds old at most.
    beat = _value(
        samples, "certautopilot_worker_last_heartbeat_timestamp_seconds", executor="ops-1"
    )
    assert beat is not None and time.time() - beat < 10
    # No label names a certificate.
    for name, labels in samples:
        for _, value in labels:
            assert value not in issued.cert_ids, name


# -- logs ------------------------------------------------------------------------------


def test_the_request_id_is_taken_or_made_and_returned(serve: Serve, issued: Issued) -> None:
    given = "ops-" + uuid.uuid4().hex
    cid = issued.cert_ids[0]
    response = serve.call(
        "GET", f"/projects/{issued.slug}/certificates/{cid}", headers={"X-Request-ID": given}
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == given
    made = serve.call("GET", "/projects", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    deadline = time.monotonic() + 10
    while True:  # the access line is written as the response ends
        mine = [line for line in serve.log_lines() if line.get("request_id") == given]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert mine, "no log line carries the request id"
    assert mine[-1]["logger"] == "certautopilot.access"
    assert mine[-1]["project"] == issued.slug and mine[-1]["certificate_id"] == cid


def test_json_lines_with_context_and_no_secret_at_debug(
    serve: Serve, issued: Issued, lab: LabInfo
) -> None:
    # A web sign-in, so a password went through the service too.
    with httpx.Client(base_url=serve.url, timeout=30) as web:
        form = web.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        signed_in = web.post(
            "/login",
            data={"csrf": csrf.group(1), "email": "admin@example.test", "password": PASSWORD},
        )
        assert signed_in.status_code == 303, signed_in.text
    lines = serve.log_lines()
    assert len(lines) > 50  # DEBUG: the worker and the libraries talk a lot
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        datetime.fromisoformat(line["time"])
    levels = {line["level"] for line in lines}
    assert "DEBUG" in levels
    # The worker's lines name the workflow and the certificate they are about.
    workflow_lines = [line for line in lines if line.get("workflow_id")]
    assert any(
        line.get("certificate_id") == issued.cert_ids[0]
        and line["workflow_id"].startswith("issue:")
        for line in workflow_lines
    ), "no worker line names its workflow and certificate"

    key = serialization.load_pem_private_key(issued.key_pem.encode(), None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    needles = {
        "TSIG secret": lab.tsig_secret,
        "private key (PEM body)": "".join(issued.key_pem.strip().splitlines()[1:-1])[:48],
        "private key (DER hex)": der.hex()[:64],
        "PEM private key header": "PRIVATE KEY-----",
        "API token": serve.token,
        "metrics token": METRICS_TOKEN,
        "password": PASSWORD,
        "KEK": _kek_text(serve.data_dir),
        "database password": DB_PASSWORD,
    }
    text = serve.log.read_text()
    for what, needle in needles.items():
        assert needle and needle not in text, f"{what} found in the logs"
    # The ACME account key (decrypted here to know what to look for) never appears either.
    assert _account_key_body(serve, issued.slug) not in text


def _kek_text(data_dir: Path) -> str:
    return (data_dir / "kek.key").read_text().strip()


def _account_key_body(serve: Serve, slug: str) -> str:
    """The project's ACME account key (PEM body), decrypted from the database."""
    import sqlalchemy as sa

    from certautopilot.crypto.kek import load_kek
    from certautopilot.db.session import make_engine, make_sessionmaker
    from certautopilot.issuers import service as issuers
    from certautopilot.issuers.models import Issuer
    from certautopilot.projects.models import Project

    engine = make_engine(serve.settings)
    try:
        with make_sessionmaker(engine)() as session:
            issuer = session.scalars(
                sa.select(Issuer)
                .join(Project, Project.id == Issuer.project_id)
                .where(Project.slug == slug)
            ).one()
            pem = issuers.account_key_pem(session, load_kek(serve.settings), issuer).decode()
    finally:
        engine.dispose()
    return "".join(pem.strip().splitlines()[1:-1])[:48]


def test_metrics_count_renewals_and_failed_notifications(
    serve: Serve, issued: Issued, lab: LabInfo
) -> None:
    """A renewal through the live service and a notification that cannot be delivered (a
    mail channel whose server does not listen, on a certificate that fails) show in the
    counters the workers keep in their multiprocess files."""
    before = serve.scrape()
    renewed_before = _value(before, "certautopilot_renewals_total", outcome="renewed") or 0
    failed_before = (
        _value(before, "certautopilot_notifications_failed_total", channel_kind="email") or 0
    )
    slug, cid = issued.slug, issued.cert_ids[1]
    serve.ok("POST", f"/projects/{slug}/certificates/{cid}/renew", 202)
    deadline = time.monotonic() + 90
    while True:
        body = serve.ok("GET", f"/projects/{slug}/certificates/{cid}")
        if body["status"] == "issued":
            events = serve.ok("GET", f"/projects/{slug}/certificates/{cid}/timeline")["events"]
            if "cert.renewed" in [e["type"] for e in events]:
                break
        assert time.monotonic() < deadline, body
        time.sleep(0.05)

    project = create_project(serve, lab, manual_zone=False)  # type: ignore[arg-type]
    serve.ok(
        "POST",
        f"/projects/{project.slug}/notification-channels",
        201,
        json={
            "name": "dead-mail",
            "kind": "email",
            "email": {
                "host": "127.0.0.1",
                "port": free_port(),
                "security": "none",
                "from_addr": "certautopilot@example.test",
            },
        },
    )
    _add_refused_zone(serve, lab, project.slug)
    failing = serve.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "n.refused.test"},
    )["id"]
    assert serve.wait_ended(project.slug, failing)["status"] == "failed"
    deadline = time.monotonic() + 90
    while True:
        path = f"/projects/{project.slug}/certificates/{failing}/timeline"
        if "notification.failed" in [e["type"] for e in serve.ok("GET", path)["events"]]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)

    deadline = time.monotonic() + 30
    while True:  # the counter is written after the event's transaction commits
        after = serve.scrape()
        renewed = _value(after, "certautopilot_renewals_total", outcome="renewed") or 0
        failed = (
            _value(after, "certautopilot_notifications_failed_total", channel_kind="email") or 0
        )
        if renewed >= renewed_before + 1 and failed >= failed_before + 1:
            break
        assert time.monotonic() < deadline, (renewed, failed)
        time.sleep(0.1)
