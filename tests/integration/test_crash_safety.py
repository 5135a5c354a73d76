"""SIGKILL the worker mid-issuance: after restart it completes, one order, one version."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from certautopilot.audit.models import AuditEvent
from certautopilot.certificates.models import CertificateVersion
from certautopilot.db.session import make_engine, make_sessionmaker
from tests.conftest import Project, Service


def _versions(service: Service, cert_id: str) -> list[CertificateVersion]:
    engine = make_engine(service.settings)
    try:
        with make_sessionmaker(engine)() as session:
            return list(
                session.scalars(
                    select(CertificateVersion).where(CertificateVersion.certificate_id == cert_id)
                )
            )
    finally:
        engine.dispose()


def _order_events(service: Service, cert_id: str) -> list[AuditEvent]:
    engine = make_engine(service.settings)
    try:
        with make_sessionmaker(engine)() as session:
            return list(
                session.scalars(
                    select(AuditEvent).where(
                        AuditEvent.subject_id == cert_id, AuditEvent.type == "acme.order.created"
                    )
                )
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("point", ["after_order", "waiting_propagation", "after_finalize"])
def test_sigkill_mid_issuance_recovers_without_second_order(
    service: Service, project: Project, tmp_path: Path, point: str
) -> None:
    marker = tmp_path / "paused"
    service.stop_worker()
    service.start_worker(
        {"CERTAUTOPILOT_FAULT_PAUSE": point, "CERTAUTOPILOT_FAULT_MARKER": str(marker)}
    )
    try:
        p = project.slug
        created = service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={
                "issuer": project.issuer_id,
                "common_name": f"crash-{point}.example.test".replace("_", "-"),
                "sans": [f"www.crash-{point}.example.test".replace("_", "-")],
            },
        )
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the worker never reached the pause point"
            time.sleep(0.02)
        [before] = _versions(service, created["id"])
        assert before.order_url, "the order URL is stored before the pause points"
        service.kill_worker()
    finally:
        if service.worker is not None and service.worker.poll() is not None:
            service.start_worker()

    body = service.wait_for(p, created["id"], ("issued", "failed"), timeout=90)
    assert body["status"] == "issued", body["error"]
    [after] = _versions(service, created["id"])
    assert after.id == before.id
    assert after.order_url == before.order_url
    assert len(_order_events(service, created["id"])) == 1
    assert after.status == "issued"
