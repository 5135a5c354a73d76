"""Renewal on its own: a lab issuing 2-minute certificates, two workers, an injected clock.

The workers run with ``CERTAUTOPILOT_CLOCK_OFFSET_SECONDS`` so the scheduler sees the
renewal time (half of the lifetime left: short-lived) a few seconds after issuance, a 1-second
tick. Both workers run the schedule; each tick runs once, and each certificate version is
renewed at most once (``cert.renewal_started`` names the version it replaces).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dbos import DBOSClient
from sqlalchemy import select, update

from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.clock import utcnow
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.notifications.models import Notification
from certautopilot.renewal import lease
from certautopilot.renewal.models import SchedulerLease
from certautopilot.workflows.launcher import APP_NAME
from certautopilot.workflows.renewal import WORKFLOW_NAME
from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import LabInfo
from certautopilot_lab.tls import tls_files
from tests.conftest import Project, Service, add_refused_zone, create_project
from tests.integration.acme_limit_proxy import LimitProxy

# Two workers ticking every second with 2-minute certificates: timing-sensitive, so run alone.
pytestmark = pytest.mark.serial

VALIDITY = 120
WORKER_ENV = {
    "CERTAUTOPILOT_RENEWAL_TICK_SECONDS": "1",
    # a 2-minute certificate is short-lived: due at half of 120 s = 60 s after issuance
    # (minus <= 2.4 s jitter), seen ~5 s after with the clock 55 s ahead
    "CERTAUTOPILOT_CLOCK_OFFSET_SECONDS": "55",
    "CERTAUTOPILOT_RENEWAL_BACKOFF_BASE_SECONDS": "1",
    "CERTAUTOPILOT_RENEWAL_MAX_ATTEMPTS": "2",
}


@pytest.fixture(scope="module")
def short_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    base = tmp_path_factory.mktemp("short-lab")
    info = start_lab_on_free_ports(base, cert_validity_seconds=VALIDITY)
    try:
        yield info
    finally:
        stop_lab(base)


def _tick_executors(service: Service) -> Counter[str | None]:
    engine = make_engine(service.settings)
    client = DBOSClient(system_database_engine=engine, application_name=APP_NAME)
    try:
        ticks = client.list_workflows(name=WORKFLOW_NAME, limit=500, sort_desc=True)
    finally:
        client.destroy()
        engine.dispose()
    assert len({t.workflow_id for t in ticks}) == len(ticks)  # one run per tick
    return Counter(t.executor_id for t in ticks if t.status == "SUCCESS")


def _wait_for_ticks_by(service: Service, executors: set[str]) -> None:
    """Both workers are up and taking renewal ticks before any certificate is requested."""
    deadline = time.monotonic() + 90  # two worker start-ups on a loaded machine
    while time.monotonic() < deadline:
        if executors <= set(_tick_executors(service)):
            return
        time.sleep(0.5)
    logs = {
        log.name: log.read_text(errors="replace")[-2000:]
        for log in sorted(service.log_dir.glob("*worker*.log"))
    }
    pytest.fail(f"not every worker ran a renewal tick: {_tick_executors(service)}; {logs}")


@pytest.fixture(scope="module")
def two_workers(service: Service) -> Iterator[Service]:
    """The service's worker restarted with the renewal env, plus a second worker process."""
    service.stop_worker()
    service.start_worker(WORKER_ENV)
    second_id = f"test-second-{uuid.uuid4().hex[:8]}"
    log = open(service.log_dir / "renewal-worker-2.log", "wb")  # noqa: SIM115
    second = subprocess.Popen(
        [sys.executable, "-m", "certautopilot.cli", "worker"],
        env={
            **service.env,
            **WORKER_ENV,
            "CERTAUTOPILOT_EXECUTOR_ID": second_id,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_ticks_by(service, {service.env["CERTAUTOPILOT_EXECUTOR_ID"], second_id})
        yield service
    finally:
        second.terminate()
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait(10)
        log.close()
        service.stop_worker()
        service.start_worker()  # back to a plain worker for the rest of the session


@pytest.fixture(scope="module")
def short_project(two_workers: Service, short_lab: LabInfo) -> Project:
    return create_project(two_workers, short_lab, manual_zone=False)


def _events(service: Service, p: str, cert_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = service.timeline(p, cert_id)["events"]
    return events


def _serial(pem: str) -> str:
    return format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")


def _wait_events(
    service: Service, p: str, cert_id: str, type: str, count: int, timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(service, p, cert_id)
        if sum(e["type"] == type for e in events) >= count:
            return events
        time.sleep(0.3)
    pytest.fail(f"no {count} x {type} on {cert_id}: {[e['type'] for e in events]}")


def test_certificates_renew_on_their_own_once_each_with_two_workers(
    two_workers: Service, short_project: Project
) -> None:
    service, p = two_workers, short_project.slug
    ids = [
        service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={"issuer": short_project.issuer_id, "common_name": f"auto{i}.example.test"},
        )["id"]
        for i in range(3)
    ]
    first = {cid: service.wait_for(p, cid, ("issued", "failed")) for cid in ids}
    for body in first.values():
        assert body["status"] == "issued", body["error"]
        assert body["renewal"]["next_at"]

    for cid in ids:
        events = _wait_events(service, p, cid, "cert.renewed", 1, timeout=45)
        started = [e for e in events if e["type"] == "cert.renewal_started"]
        assert started and all(e["actor"] == "scheduler" for e in started)
        # at most once per version: no version is replaced twice
        replaced = Counter(e["detail"]["from_version"] for e in started)
        assert max(replaced.values()) == 1, replaced
        body = service.ok("GET", f"/projects/{p}/certificates/{cid}")
        assert body["current"]["serial"] != first[cid]["current"]["serial"]
        # the previous version stays listed and downloadable until it expires
        listed = service.ok("GET", f"/projects/{p}/certificates/{cid}/versions")
        assert [v["seq"] for v in listed if v["current"]] != [1]
        old_pem = service.call("GET", f"/projects/{p}/certificates/{cid}/versions/1/cert.pem")
        assert old_pem.status_code == 200, old_pem.text
        assert _serial(old_pem.text) == first[cid]["current"]["serial"]

    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            for cid in ids:
                versions = session.query(CertificateVersion).filter_by(certificate_id=cid).all()
                renewals = [v for v in versions if v.reason == "renew"]
                started = [
                    e for e in _events(service, p, cid) if e["type"] == "cert.renewal_started"
                ]
                assert len(renewals) == len(started)  # no version without its claim
                # the previous version is kept, with its certificate, until it expires
                old = next(v for v in versions if v.seq == 1)
                assert old.status == "issued" and old.chain_secret_id is not None
    finally:
        engine.dispose()
    assert len(_tick_executors(service)) >= 2  # both workers took ticks


def test_failed_renewal_leaves_the_valid_certificate_current(
    two_workers: Service, short_project: Project, short_lab: LabInfo
) -> None:
    service, p = two_workers, short_project.slug
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": short_project.issuer_id,
            "common_name": "keep.example.test",
            # due with 30 % left: 84 s after issuance, seen by the workers ~7-9 s after
            "renewal_window": {"fraction_remaining": 0.3},
        },
    )["id"]
    issued = service.wait_for(p, cid, ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    service.ok(  # an unreachable mail server: the outbox row is what the test checks
        "POST",
        f"/projects/{p}/notification-channels",
        201,
        json={
            "name": "ops-mail",
            "kind": "email",
            "email": {
                "host": "127.0.0.1",
                "port": 9,
                "security": "none",
                "from_addr": "certautopilot@example.test",
            },
        },
    )
    serial = issued["current"]["serial"]
    # From now on the DNS provider refuses: a zone whose TSIG secret BIND does not know.
    broken = add_refused_zone(
        service, short_lab, p, "keep.example.test", propagation_timeout_seconds=2
    )["id"]
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            cert = session.get(Certificate, cid)
            assert cert is not None
            overrides = dict(cert.challenge_overrides)
            overrides["keep.example.test"] = {**overrides["keep.example.test"], "zone_id": broken}
            cert.challenge_overrides = overrides
    finally:
        engine.dispose()

    events = _wait_events(service, p, cid, "renewal.failed", 1, timeout=50)
    types = [e["type"] for e in events]
    assert types.count("cert.renewal_started") == 2, types  # MAX_ATTEMPTS
    assert "renewal.retry_scheduled" in types and "cert.renewed" not in types
    failed = next(e for e in events if e["type"] == "renewal.failed")
    assert failed["detail"]["attempt"] == 2 and failed["actor"] == "scheduler"

    body = service.ok("GET", f"/projects/{p}/certificates/{cid}")
    assert body["current"]["serial"] == serial  # the valid certificate stays current
    assert body["status"] == "failed" and body["error"]["title"] == "DNS error"
    assert body["renewal"] is None  # attempts spent: no more automatic tries
    pem = service.call("GET", f"/projects/{p}/certificates/{cid}/cert.pem")
    assert pem.status_code == 200 and _serial(pem.text) == serial
    _two_more_full_ticks(service)  # ticks that ran in full: nothing more was started
    again = [e["type"] for e in _events(service, p, cid)]
    assert again.count("cert.renewal_started") == 2
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            told = session.scalars(
                select(Notification.recipients).where(
                    Notification.certificate_id == cid, Notification.event == "renewal.failed"
                )
            ).all()
    finally:
        engine.dispose()
    assert told == [["admin@example.test"]]  # one channel, one message, the requester


def test_profile_the_directory_does_not_advertise_is_refused(
    two_workers: Service, short_project: Project
) -> None:
    """Pebble 2.4 advertises no ``profiles``: naming one is a validation error, nothing stored."""
    response = two_workers.call(
        "POST",
        f"/projects/{short_project.slug}/certificates",
        json={
            "issuer": short_project.issuer_id,
            "common_name": "profiled.example.test",
            "acme_profile": "shortlived",
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "acme_profile" and "shortlived" in error["message"]
    listed = two_workers.ok("GET", f"/projects/{short_project.slug}/certificates?q=profiled")
    assert listed["items"] == []


def test_rate_limited_renewal_honours_retry_after(
    two_workers: Service, short_project: Project, short_lab: LabInfo
) -> None:
    """An issuer behind a proxy that answers newOrder with 429 + Retry-After: 3600 once the
    first certificate is issued: the renewal asks once, keeps the current certificate and
    waits at least the hour the CA asked for (no retry storm)."""
    service, p = two_workers, short_project.slug
    files = tls_files(short_lab.ca_bundle_path.parent)
    proxy = LimitProxy(short_lab.acme_port, files.leaf_cert, files.leaf_key, retry_after=3600)
    try:
        issuer = service.ok(
            "POST",
            f"/projects/{p}/issuers",
            201,
            json={
                "name": "pebble-behind-proxy",
                "kind": "acme",
                "acme": {
                    "directory_url": proxy.directory_url,
                    "contact_email": "ops@example.test",
                    "terms_agreed": True,
                    "ca_bundle_pem": short_lab.ca_bundle_path.read_text(),
                },
            },
        )
        cid = service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={
                "issuer": issuer["id"],
                "common_name": "limited.example.test",
                "renewal_window": {"fraction_remaining": 0.3},
            },
        )["id"]
        issued = service.wait_for(p, cid, ("issued", "failed"))
        assert issued["status"] == "issued", issued["error"]
        assert proxy.orders == 1
        proxy.limited = True
        events = _wait_events(service, p, cid, "renewal.retry_scheduled", 1, timeout=30)
        retry = next(e for e in events if e["type"] == "renewal.retry_scheduled")
        started = next(e for e in events if e["type"] == "cert.renewal_started")
        assert proxy.refused == 1  # one ask, no retries within the Retry-After
        wait = datetime.fromisoformat(retry["detail"]["next_at"]) - datetime.fromisoformat(
            started["at"]
        )
        assert wait >= timedelta(seconds=3600 + 55 - 5), wait  # scheduler clock is 55 s ahead
        body = service.ok("GET", f"/projects/{p}/certificates/{cid}")
        assert body["current"]["serial"] == issued["current"]["serial"]
        assert body["status"] == "issued" and body["error"]["retry_after"] == 3600
        _two_more_full_ticks(service)  # ticks that ran in full: nothing asked the CA again
        assert proxy.refused == 1 and proxy.orders == 2
    finally:
        proxy.close()


def test_byo_csr_certificate_is_warned_about_not_renewed(
    two_workers: Service, short_project: Project
) -> None:
    """Own-CSR certificates are never renewed automatically; a 2-minute one has crossed every
    threshold (30/14/7/1 days) at once: one warning (1 day) on the timeline, not repeated."""
    service, p = two_workers, short_project.slug
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "own.example.test")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("own.example.test")]), False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": short_project.issuer_id, "csr_pem": csr},
    )
    assert created["auto_renew"] is False
    issued = service.wait_for(p, created["id"], ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    _wait_events(service, p, created["id"], "cert.expiry_warning", 1, timeout=20)
    _two_more_full_ticks(service)  # ticks that ran in full: no second warning
    events = _events(service, p, created["id"])
    warnings = [e for e in events if e["type"] == "cert.expiry_warning"]
    assert len(warnings) == 1 and warnings[0]["detail"]["days"] == 1
    assert warnings[0]["actor"] == "scheduler"
    assert not any(e["type"] == "cert.renewal_started" for e in events)


def _ticks_since(service: Service, since_ms: int) -> list[list[str]]:
    """The steps of each renewal tick that was created after ``since_ms`` and has ended."""
    engine = make_engine(service.settings)
    client = DBOSClient(system_database_engine=engine, application_name=APP_NAME)
    try:
        ticks = client.list_workflows(name=WORKFLOW_NAME, limit=50, sort_desc=True)
        return [
            [step["function_name"] for step in client.list_workflow_steps(t.workflow_id)]
            for t in ticks
            if t.status == "SUCCESS" and (t.created_at or 0) > since_ms
        ]
    finally:
        client.destroy()
        engine.dispose()


def _two_more_full_ticks(service: Service) -> None:
    """Waits until two renewal ticks created from now on have run every step (not ended at
    the lease because another held it): what "nothing more happened" is asserted after."""
    mark = int(time.time() * 1000)
    _wait_ticks(
        service,
        mark,
        lambda ticks: sum("renewal.due" in steps for steps in ticks) >= 2,
        "two full renewal ticks",
    )


def _wait_ticks(
    service: Service, since_ms: int, enough: Any, what: str, timeout: float = 60
) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ticks = _ticks_since(service, since_ms)
        if enough(ticks):
            return ticks
        time.sleep(0.3)
    pytest.fail(f"no {what} after the mark: {_ticks_since(service, since_ms)}")


def test_ticks_take_turns_and_a_dead_ticks_lease_expires(two_workers: Service) -> None:
    """While a tick holds the scheduler's lease (here the test holds it, as a long tick
    would), the ticks the two workers fire end at their first step and touch nothing; a lease
    whose holder stopped renewing it (a worker that died mid-tick) is taken over once it has
    expired, and ticks run in full again."""
    engine = make_engine(two_workers.settings)
    sessions = make_sessionmaker(engine)
    held = lease.Lease(lease.RENEWAL_TICK, "test-long-tick", timedelta(minutes=10))
    try:
        deadline = time.monotonic() + 30
        while True:  # a real tick may hold it for a moment: take it between two ticks
            with transaction(sessions) as session:
                if lease.acquire(session, held, wall=utcnow()):
                    break
            assert time.monotonic() < deadline, "the lease was never free"
            time.sleep(0.2)
        try:
            mark = int(time.time() * 1000)
            ticks = _wait_ticks(two_workers, mark, lambda t: len(t) >= 3, "three ticks")
            assert all(steps == ["renewal.lease"] for steps in ticks), ticks
        finally:
            with transaction(sessions) as session:
                lease.release(session, held)

        # A holder that died: its lease ran out a second ago and nothing renews it.
        with transaction(sessions) as session:
            session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == lease.RENEWAL_TICK)
                .values(holder="a-dead-tick", expires_at=utcnow() - timedelta(seconds=1))
            )
        mark = int(time.time() * 1000)
        ticks = _wait_ticks(
            two_workers,
            mark,
            lambda t: any("renewal.due" in steps for steps in t),
            "full tick",
        )
        with transaction(sessions) as session:
            row = session.get(SchedulerLease, lease.RENEWAL_TICK)
            assert row is not None and row.holder != "a-dead-tick"
    finally:
        engine.dispose()
