"""Shared fixtures: the real ACME lab (Pebble + BIND), databases, and a running service.

The API runs in-process (FastAPI's TestClient); the durable worker runs as a real
``certautopilot worker`` child process, so tests can SIGKILL it and start it again.
Databases: SQLite always; PostgreSQL too when CERTAUTOPILOT_TEST_DATABASE_URL is set
(each test session gets a fresh database on that server, dropped afterwards).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.dns.schemas import ZoneIn
from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import UNLIMITED_BUDGET_ENV, LabInfo

OUTPUT = Path(os.environ.get("CERTAUTOPILOT_TEST_OUTPUT", "test-output")).resolve()
os.environ.setdefault("CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    base = tmp_path_factory.mktemp("lab")
    info = start_lab_on_free_ports(base)
    try:
        yield info
    finally:
        stop_lab(base)


def _backends() -> list[str]:
    return (
        ["sqlite", "postgresql"]
        if os.environ.get("CERTAUTOPILOT_TEST_DATABASE_URL")
        else ["sqlite"]
    )


@pytest.fixture(scope="session", params=_backends())
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'certautopilot.db'}"
        return
    server = os.environ["CERTAUTOPILOT_TEST_DATABASE_URL"]
    if server.startswith("postgresql://"):
        server = "postgresql+psycopg://" + server.removeprefix("postgresql://")
    name = f"cap_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@dataclass
class Service:
    """A running CertAutoPilot: API client, worker process, an admin token."""

    settings: Settings
    env: dict[str, str]
    client: TestClient
    admin_token: str
    log_dir: Path
    worker: subprocess.Popen[bytes] | None = None
    worker_count: int = 0
    _tokens: dict[str, str] = field(default_factory=dict)

    # -- worker control ---------------------------------------------------------------
    def start_worker(self, extra_env: dict[str, str] | None = None) -> None:
        assert self.worker is None or self.worker.poll() is not None
        self.worker_count += 1
        log = open(self.log_dir / f"worker-{self.worker_count}.log", "wb")  # noqa: SIM115
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "certautopilot.cli", "worker"],
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait(10)

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(10)

    # -- HTTP helpers -----------------------------------------------------------------
    def token_for(self, email: str) -> str:
        if email not in self._tokens:
            engine = make_engine(self.settings)
            try:
                with transaction(make_sessionmaker(engine)) as session:
                    user = auth.ensure_user(session, email=email)
                    self._tokens[email] = auth.create_token(session, user=user)
            finally:
                engine.dispose()
        return self._tokens[email]

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def wait_for(
        self, project: str, cert_id: str, statuses: tuple[str, ...], timeout: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.ok("GET", f"/projects/{project}/certificates/{cert_id}")
            if body["status"] in statuses:
                return body
            if self.worker is not None and self.worker.poll() is not None:
                pytest.fail(f"worker exited with {self.worker.returncode}; see {self.log_dir}")
            time.sleep(0.05)
        pytest.fail(f"certificate stayed {body.get('status')} (wanted {statuses}): {body}")

    def timeline(self, project: str, cert_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok(
            "GET", f"/projects/{project}/certificates/{cert_id}/timeline"
        )
        return result


def _make_service(database_url: str, data_dir: Path) -> Iterator[Service]:
    env = {
        **os.environ,
        **UNLIMITED_BUDGET_ENV,  # Pebble has no rate limits; test_rate_budget sets small ones
        "CERTAUTOPILOT_DATA_DIR": str(data_dir),
        "CERTAUTOPILOT_DATABASE_URL": database_url,
        "CERTAUTOPILOT_EXECUTOR_ID": f"test-{uuid.uuid4().hex[:8]}",
        "CERTAUTOPILOT_LOG_LEVEL": "INFO",
    }
    settings = Settings.from_env(env)
    upgrade(settings)
    engine = make_engine(settings)
    with transaction(make_sessionmaker(engine)) as session:
        admin = auth.ensure_user(session, email="admin@example.test")
        token = auth.create_token(session, user=admin)
    engine.dispose()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with TestClient(create_app(settings)) as client:
        service = Service(
            settings=settings, env=env, client=client, admin_token=token, log_dir=log_dir
        )
        service.start_worker()
        try:
            yield service
        finally:
            service.stop_worker()
            OUTPUT.mkdir(parents=True, exist_ok=True)
            for log in log_dir.glob("*.log"):
                shutil.copy(log, OUTPUT / f"{data_dir.name}-{log.name}")


@pytest.fixture(scope="session")
def service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, lab: LabInfo
) -> Iterator[Service]:
    yield from _make_service(database_url, tmp_path_factory.mktemp("data"))


@dataclass(frozen=True)
class Project:
    slug: str
    issuer_id: str
    zone_ids: dict[str, str]


def add_pebble_issuer(service: Service, lab: LabInfo, slug: str) -> dict[str, Any]:
    """An ACME issuer named ``pebble`` on the lab's Pebble (its account registered)."""
    issuer: dict[str, Any] = service.ok(
        "POST",
        f"/projects/{slug}/issuers",
        201,
        json={
            "name": "pebble",
            "kind": "acme",
            "acme": {
                "directory_url": lab.directory_url,
                "contact_email": "ops@example.test",
                "terms_agreed": True,
                "ca_bundle_pem": lab.ca_bundle_path.read_text(),
            },
        },
    )
    return issuer


def create_project(service: Service, lab: LabInfo, *, manual_zone: bool = True) -> Project:
    slug = f"p-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Project {slug}"})
    issuer = add_pebble_issuer(service, lab, slug)
    ns = [f"127.0.0.1:{lab.dns_port}"]
    zones = {}
    for name in ("example.test", "sub.example.test"):
        zones[name] = service.ok(
            "POST",
            f"/projects/{slug}/zones",
            201,
            json={
                "name": name,
                "provider": "rfc2136",
                "nameservers": ns,
                "propagation_timeout_seconds": 30,
                "rfc2136": {
                    "server": "127.0.0.1",
                    "port": lab.dns_port,
                    "tsig_name": lab.tsig_name,
                    "tsig_algorithm": lab.tsig_algorithm,
                    "tsig_secret": lab.tsig_secret,
                },
            },
        )["id"]
    if manual_zone:
        zones["manual.test"] = service.ok(
            "POST",
            f"/projects/{slug}/zones",
            201,
            json={
                "name": "manual.test",
                "provider": "manual",
                "nameservers": ns,
            },
        )["id"]
    return Project(slug=slug, issuer_id=issuer["id"], zone_ids=zones)


@pytest.fixture
def project(service: Service, lab: LabInfo) -> Project:
    return create_project(service, lab)


ProjectFactory = Callable[..., Project]


#: A well-formed TSIG secret that is not the lab's: BIND refuses every update signed with it.
WRONG_TSIG_SECRET = "d3JvbmctYnV0LWJhc2U2NC1zZWNyZXQtdmFsdWUtMzI="


def add_refused_zone(
    service: Service, lab: LabInfo, slug: str, name: str, **fields: Any
) -> dict[str, Any]:
    """A zone whose TSIG key BIND refuses, so issuance of a name in it fails (the failure
    path: notifications, backoff, a kept current version); ``fields`` adds to the body.

    The API checks a zone's key at its server when the zone is added and answers 422 for
    this one (tests/integration/test_zone_lifecycle.py shows it). So the zone is stored
    through the zone service's plan and create steps without the check step: it stands for
    a zone whose key was revoked at the server after it was added."""
    from certautopilot.dns.schemas import ZoneIn

    body = ZoneIn.model_validate(
        {
            "name": name,
            "provider": "rfc2136",
            "nameservers": [f"127.0.0.1:{lab.dns_port}"],
            **fields,
            "rfc2136": {
                "server": "127.0.0.1",
                "port": lab.dns_port,
                "tsig_name": lab.tsig_name,
                "tsig_algorithm": lab.tsig_algorithm,
                "tsig_secret": WRONG_TSIG_SECRET,
            },
        }
    )
    return store_zone_unchecked(service, slug, body)


def store_zone_unchecked(service: Service, slug: str, body: ZoneIn) -> dict[str, Any]:
    """Stores a zone through the zone service's plan and create steps, without the check
    step that contacts its provider (for a provider no test may reach), and answers it as
    the API does."""
    from certautopilot.dns import service as zones
    from certautopilot.projects.models import Project as ProjectRow

    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            project_id = session.scalar(sa.select(ProjectRow.id).where(ProjectRow.slug == slug))
            assert project_id is not None
            user = auth.ensure_user(session, email="admin@example.test")
            admin = auth.Actor(user_id=user.id, email=user.email, role="admin")
            plan = zones.plan_new_zone(session, project_id=project_id, body=body)
            kek = service.client.app.state.cap.kek  # type: ignore[attr-defined]
            zone = zones.create_zone(session, kek, project_id=project_id, plan=plan, actor=admin)
            zone_id = zone.id
    finally:
        engine.dispose()
    stored: dict[str, Any] = service.ok("GET", f"/projects/{slug}/zones/{zone_id}")
    return stored
