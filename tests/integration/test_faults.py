"""Faults mid-issuance: the zone's DNS server stops answering (BIND frozen with SIGSTOP)
while the worker is killed after the ACME order and restarted. Every certificate is issued
once: one order, one version, the outage on its timeline."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    """A lab of this module's own: freezing its BIND disturbs no other test."""
    base = tmp_path_factory.mktemp("faultlab")
    info = start_lab_on_free_ports(base)
    try:
        yield info
    finally:
        os.kill(info.named_pid, signal.SIGCONT)
        stop_lab(base)


def _events(service: Service, slug: str, cert_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = service.timeline(slug, cert_id)["events"]
    return events


def _wait_for_events(
    service: Service, slug: str, ids: list[str], kind: str, count: int, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        seen = {i: sum(e["type"] == kind for e in _events(service, slug, i)) for i in ids}
        if all(n >= count for n in seen.values()):
            return
        assert time.monotonic() < deadline, f"wanted {count} x {kind} each, saw {seen}"
        time.sleep(0.2)


def test_dns_outage_and_worker_kill_mid_issuance(
    service: Service, own_lab: LabInfo, tmp_path: Path
) -> None:
    project = create_project(service, own_lab, manual_zone=False)
    slug = project.slug
    service.stop_worker()
    service.start_worker(
        {
            "CERTAUTOPILOT_FAULT_PAUSE": "after_order",
            "CERTAUTOPILOT_FAULT_MARKER": str(tmp_path / "m"),
        }
    )
    frozen = False
    try:
        ids = [
            service.ok(
                "POST",
                f"/projects/{slug}/certificates",
                202,
                json={"issuer": project.issuer_id, "common_name": f"outage{i}.example.test"},
            )["id"]
            for i in range(2)
        ]
        _wait_for_events(service, slug, ids, "acme.order.created", 1)
        # The orders are placed; the DNS server stops answering, the worker dies.
        os.kill(own_lab.named_pid, signal.SIGSTOP)
        frozen = True
        service.kill_worker()
        service.start_worker()
        # The restarted worker resumes each issuance and waits for the DNS server...
        _wait_for_events(service, slug, ids, "dns.server.unavailable", 2)
    finally:
        if frozen:
            os.kill(own_lab.named_pid, signal.SIGCONT)  # ... which comes back
        if service.worker is None or service.worker.poll() is not None:
            service.start_worker()
    for cert_id in ids:
        body = service.wait_for(slug, cert_id, ("issued", "failed"), timeout=120)
        assert body["status"] == "issued", body["error"]
        events = _events(service, slug, cert_id)
        types = [e["type"] for e in events]
        assert types.count("acme.order.created") == 1, "no second order after the restart"
        assert types.count("cert.issued") == 1
        outage = [e for e in events if e["type"] == "dns.server.unavailable"]
        assert f"127.0.0.1:{own_lab.dns_port}" in outage[0]["detail"]["error"]
        assert outage[0]["detail"]["retry_in_seconds"] == 2.0
        versions = service.ok("GET", f"/projects/{slug}/certificates/{cert_id}/versions")
        assert len(versions) == 1
