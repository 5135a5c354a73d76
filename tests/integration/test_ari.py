"""ARI (RFC 9773) against a CA that offers it: acme2certifier, validating through BIND.

The service's worker ticks every second here. What is checked is what the timeline shows:
the CA's window for each current version (asked for as soon as a version is current, not
after the previous version's Retry-After of a day), ``replaces`` only as the CA
acknowledged it, and a "renew now" window (acme2certifier's ``renewal_force``) starting a
renewal in the very tick that read it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from certautopilot_lab.a2c import A2CInfo, A2CSettings
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, add_a2c_issuer, create_project, running_a2c

TICK = {"CERTAUTOPILOT_RENEWAL_TICK_SECONDS": "1"}


@pytest.fixture(scope="module")
def ticking(service: Service) -> Iterator[Service]:
    service.stop_worker()
    service.start_worker(TICK)
    try:
        yield service
    finally:
        service.stop_worker()
        service.start_worker()  # back to a plain worker for the rest of the session


@pytest.fixture(scope="module")
def forcing_a2c(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[A2CInfo]:
    with running_a2c(
        lab, tmp_path_factory.mktemp("a2c-force"), A2CSettings(renewal_force=True)
    ) as a:
        yield a


def _project(service: Service, lab: LabInfo, a2c: A2CInfo) -> Project:
    made = create_project(service, lab, manual_zone=False)
    issuer = add_a2c_issuer(service, a2c, made.slug)
    return Project(made.slug, issuer["id"], made.zone_ids, ca="acme2certifier")


def _events_until(
    service: Service, p: str, cid: str, done: Any, timeout: float = 45.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = service.timeline(p, cid)["events"]
        if done(events):
            return events
        time.sleep(0.2)
    pytest.fail(f"timeline never got there: {[e['type'] for e in events]}")


def _ari_scheduled(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e for e in events if e["type"] == "renewal.scheduled" and e["detail"].get("source") == "ari"
    ]


def test_each_new_version_gets_its_own_window_at_once(
    ticking: Service, lab: LabInfo, a2c: A2CInfo
) -> None:
    service = ticking
    project = _project(service, lab, a2c)
    p = project.slug
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "ari.example.test"},
    )["id"]
    issued = service.wait_for(p, cid, ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    first = _ari_scheduled(_events_until(service, p, cid, lambda ev: _ari_scheduled(ev)))[0]
    assert datetime.fromisoformat(first["detail"]["window"]["end"]) == datetime.fromisoformat(
        issued["current"]["not_after"]
    )

    service.ok("POST", f"/projects/{p}/certificates/{cid}/renew", 202)
    renewed = service.wait_for(p, cid, ("issued", "failed"))
    assert renewed["status"] == "issued", renewed["error"]
    # acme2certifier's Retry-After is a day: only a reset for the new version asks again now
    events = _events_until(service, p, cid, lambda ev: len(_ari_scheduled(ev)) >= 2, 20)
    second = _ari_scheduled(events)[1]
    # Not "a different window": acme2certifier's window ends at not_after, to the second, and
    # a renewal within the same second as the first issuance has the same one. What shows
    # the new version was asked about is the time and the end matching its own expiry.
    renewed_at = next(e for e in events if e["type"] == "cert.renewed")["at"]
    assert second["at"] > renewed_at
    assert datetime.fromisoformat(second["detail"]["window"]["end"]) == datetime.fromisoformat(
        renewed["current"]["not_after"]
    )  # acme2certifier's window ends at the new version's expiry

    # acme2certifier ignores ``replaces`` and does not echo it: the timeline does not
    # claim a replacement the CA never acknowledged (RFC 9773 §5).
    orders = [e["detail"] for e in events if e["type"] == "acme.order.created"]
    assert len(orders) == 2
    assert "replaces" not in orders[1]
    assert orders[1]["replaces_acknowledged"] is False and orders[1]["replaces_sent"]


def test_a_renew_now_window_renews_within_one_tick(
    ticking: Service, lab: LabInfo, forcing_a2c: A2CInfo
) -> None:
    service = ticking
    project = _project(service, lab, forcing_a2c)
    p = project.slug
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "force.example.test"},
    )["id"]
    assert service.wait_for(p, cid, ("issued", "failed"))["status"] == "issued"
    try:
        events = _events_until(
            service, p, cid, lambda ev: any(e["type"] == "cert.renewed" for e in ev), 30
        )
    finally:
        # the CA keeps saying "renew now": stop it renewing for the rest of the session
        service.ok(
            "POST", f"/projects/{p}/certificates/{cid}/revoke", json={"reason": "superseded"}
        )
    scheduled = _ari_scheduled(events)[0]
    started = next(e for e in events if e["type"] == "cert.renewal_started")
    # the window's point is "now", and the renewal starts in the same tick that read it
    assert scheduled["detail"]["next_at"] <= started["at"]
    gap = datetime.fromisoformat(started["at"]) - datetime.fromisoformat(scheduled["at"])
    assert gap.total_seconds() < 1.0, (scheduled, started)
