"""Shared fixtures: the real ACME lab (Pebble + BIND), databases, and a running service.

The API runs in-process (FastAPI's TestClient); the durable worker runs as a real
``certautopilot worker`` child process, so tests can SIGKILL it and start it again.
Databases: SQLite always; PostgreSQL too when CERTAUTOPILOT_TEST_DATABASE_URL is set
(each test session gets a fresh database on that server, dropped afterwards).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from certautopilot import netguard
from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.auth import tokens
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.dns.schemas import ZoneIn
from certautopilot_lab.a2c import A2CInfo, A2CSettings, start_a2c, stop_a2c
from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import UNLIMITED_BUDGET_ENV, LabInfo
from certautopilot_lab.probes import crl_serials, pebble_cert_status, pebble_roots

OUTPUT = Path(os.environ.get("CERTAUTOPILOT_TEST_OUTPUT", "test-output")).resolve()
os.environ.setdefault("CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8")


@pytest.fixture(scope="session", autouse=True)
def _reach_before_module_fixtures() -> None:
    """The same allow list once at the start of the session: module fixtures (a Pebble of
    its own, checked over HTTPS as it starts) connect before any test's ``_reach`` runs."""
    netguard.install(Settings.from_env().reach)


@pytest.fixture(autouse=True)
def _reach() -> None:
    """What the app and the worker install at start, before every test: the connect-time
    SSRF guard allows the environment's networks (127.0.0.0/8 unless set), so [::1] stays
    refused. Per test, because ``create_app`` installs its own settings' networks
    process-wide: a test that builds an app with other settings must not change what the
    next test may reach."""
    netguard.install(Settings.from_env().reach)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    base = tmp_path_factory.mktemp("lab")
    info = start_lab_on_free_ports(base)
    try:
        yield info
    finally:
        stop_lab(base)


@contextmanager
def running_a2c(
    lab: LabInfo, folder: Path, settings: A2CSettings | None = None
) -> Iterator[A2CInfo]:
    """acme2certifier validating through ``lab``'s BIND, stopped afterwards."""
    info = start_a2c(folder, lab, settings)
    try:
        yield info
    finally:
        stop_a2c(folder)


@pytest.fixture(scope="session")
def a2c(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[A2CInfo]:
    """The session's acme2certifier (no EAB, 90-day certificates), started on first use."""
    with running_a2c(lab, tmp_path_factory.mktemp("a2c")) as info:
        yield info


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when CERTAUTOPILOT_TEST_DATABASE_URL names a server."""
    return (
        ["sqlite", "postgresql"]
        if os.environ.get("CERTAUTOPILOT_TEST_DATABASE_URL")
        else ["sqlite"]
    )


@contextmanager
def fresh_database(backend: str, folder: Path, prefix: str = "cap_test") -> Iterator[str]:
    """The URL of an empty database of its own: a SQLite file in ``folder``, or a database
    created on the PostgreSQL server and dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'certautopilot.db'}"
        return
    server = os.environ["CERTAUTOPILOT_TEST_DATABASE_URL"]
    if server.startswith("postgresql://"):
        server = "postgresql+psycopg://" + server.removeprefix("postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
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


@pytest.fixture(scope="session", params=backends())
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("sqlite")) as url:
        yield url


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
                    self._tokens[email] = tokens.create_token(session, user=user)
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

    def renew_validating(
        self, project: str, cert_id: str, attempts: int = 3
    ) -> tuple[dict[str, Any], int]:
        """Renews until the CA validated every name afresh; returns the certificate and how
        many renewals that took. Pebble reuses a valid authorization about 1% of the time
        even with ``PEBBLE_AUTHZREUSE=0`` (its wfe.go makes a new one only when
        ``rand.Intn(100) > percent``); a test about the DNS work of a renewal needs a renewal
        that did it. The service names reused ones in ``acme.authorizations.valid``."""
        url = f"/projects/{project}/certificates/{cert_id}"
        for renewals in range(1, attempts + 1):
            self.ok("POST", f"{url}/renew", 202)
            body = self.wait_for(project, cert_id, ("issued", "failed"))
            events = self.timeline(project, cert_id)["events"]
            valid = [e for e in events if e["type"] == "acme.authorizations.valid"]
            if body["status"] != "issued" or not valid[-1]["detail"].get("reused"):
                return body, renewals
        pytest.fail(f"the CA reused an authorization on {attempts} renewals in a row")

    def timeline(self, project: str, cert_id: str) -> dict[str, Any]:
        """The whole timeline, oldest first: every page, followed by its cursor."""
        url = f"/projects/{project}/certificates/{cert_id}/timeline"
        result: dict[str, Any] = self.ok("GET", url, params={"limit": 1000})
        while result.get("next_cursor"):
            page = self.ok("GET", url, params={"limit": 1000, "cursor": result["next_cursor"]})
            result["events"] += page["events"]
            result["next_cursor"] = page["next_cursor"]
        return result


def _make_service(
    database_url: str,
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    migrate_url: str | None = None,
) -> Iterator[Service]:
    """A service on ``database_url``; ``migrate_url`` (PostgreSQL itself, when the service
    reaches it through PgBouncer) runs the migrations instead."""
    env = {
        **os.environ,
        **UNLIMITED_BUDGET_ENV,  # Pebble has no rate limits; test_rate_budget sets small ones
        "CERTAUTOPILOT_DATA_DIR": str(data_dir),
        "CERTAUTOPILOT_DATABASE_URL": database_url,
        "CERTAUTOPILOT_EXECUTOR_ID": f"test-{uuid.uuid4().hex[:8]}",
        "CERTAUTOPILOT_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    settings = Settings.from_env(env)
    upgrade(Settings.from_env({**env, "CERTAUTOPILOT_DATABASE_URL": migrate_url or database_url}))
    engine = make_engine(settings)
    with transaction(make_sessionmaker(engine)) as session:
        # The operator who runs the instance: an instance admin (may create projects).
        admin = auth.ensure_user(session, email="admin@example.test", instance_admin=True)
        token = tokens.create_token(session, user=admin)
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
    ca: str = "pebble"


def add_pebble_issuer(
    service: Service, lab: LabInfo, slug: str, *, name: str = "pebble"
) -> dict[str, Any]:
    """An ACME issuer (named ``pebble`` by default) on the lab's Pebble, its account
    registered."""
    issuer: dict[str, Any] = service.ok(
        "POST",
        f"/projects/{slug}/issuers",
        201,
        json={
            "name": name,
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


def add_a2c_issuer(
    service: Service, a2c: A2CInfo, slug: str, *, name: str = "acme2certifier", **acme: Any
) -> dict[str, Any]:
    """An ACME issuer on the lab's acme2certifier (its account registered); ``acme`` adds
    fields (EAB)."""
    issuer: dict[str, Any] = service.ok(
        "POST",
        f"/projects/{slug}/issuers",
        201,
        json={
            "name": name,
            "kind": "acme",
            "acme": {
                "directory_url": a2c.directory_url,
                "contact_email": "ops@example.test",
                "terms_agreed": True,
                "ca_bundle_pem": a2c.ca_bundle_path.read_text(),
                **acme,
            },
        },
    )
    return issuer


@dataclass(frozen=True)
class CA:
    """One of the ACME CAs the tests run against, as a test checks what it did."""

    name: str
    roots: Callable[[], list[str]]  # PEM of the certificates its chains end in
    is_revoked: Callable[[str], bool]  # by serial (lowercase hex)


def pebble_ca(lab: LabInfo) -> CA:
    return CA(
        "pebble",
        lambda: pebble_roots(lab),
        lambda serial: pebble_cert_status(lab, serial)["Status"] == "Revoked",
    )


def a2c_ca(info: A2CInfo) -> CA:
    return CA(
        "acme2certifier",
        lambda: [info.root_path.read_text()],
        lambda serial: int(serial, 16) in crl_serials(info.crl_path),
    )


ACME_CAS = ("pebble", "acme2certifier")


@pytest.fixture(params=ACME_CAS)
def acme_ca(request: pytest.FixtureRequest, lab: LabInfo) -> CA:
    """Each ACME CA in turn (acme2certifier is started only when a test asks for it)."""
    if request.param == "pebble":
        return pebble_ca(lab)
    return a2c_ca(request.getfixturevalue("a2c"))


@pytest.fixture
def ca_project(
    request: pytest.FixtureRequest, service: Service, lab: LabInfo, acme_ca: CA
) -> Project:
    """A project (zones as :func:`create_project`) whose issuer is ``acme_ca``."""
    made = create_project(service, lab)
    if acme_ca.name == "pebble":
        return made
    issuer = add_a2c_issuer(service, request.getfixturevalue("a2c"), made.slug)
    return Project(made.slug, issuer["id"], made.zone_ids, ca=acme_ca.name)


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


def issue_one(service: Service, project: Project, name: str) -> str:
    """The id of a certificate for ``name`` requested on ``project``'s issuer, once issued."""
    cid: str = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name},
    )["id"]
    body = service.wait_for(project.slug, cid, ("issued", "failed"))
    assert body["status"] == "issued", body["error"]
    return cid


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


WEB_PASSWORD = "web-client-password-1"


def sign_in_client(service: Service, email: str = "admin@example.test") -> str:
    """Signs the service's TestClient in to the web UI as ``email`` (its password set here)
    and returns the CSRF token of its pages. ``service.client.cookies.clear()`` signs out."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            auth.set_password(auth.ensure_user(session, email=email), WEB_PASSWORD)
    finally:
        engine.dispose()
    client = service.client
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None
    signed_in = client.post(
        "/login",
        data={"email": email, "password": WEB_PASSWORD, "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    page = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert page is not None
    return page.group(1)
