"""The rate-limit budget against the real lab: every new order counts (a first issuance,
renewals by hand), and a request over a small configured budget is refused with 429
problem+json naming the limit and when it frees up - the CA is not asked.

The API under test is a second app on the session's database with small limits
(``Settings.rate_limits``); the session's worker issues for both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from certautopilot.app import create_app
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.renewal.budget import Limits
from certautopilot.renewal.models import OrderLog
from tests.conftest import Project, Service

LIMITS = Limits(duplicate_certs=2, orders_per_account=4)


@pytest.fixture
def small(service: Service) -> Iterator[Service]:
    settings = dataclasses.replace(service.settings, rate_limits=LIMITS)
    with TestClient(create_app(settings)) as client:
        yield dataclasses.replace(service, client=client)


def _orders_logged(service: Service, cert_id: str) -> int:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return int(
                session.scalar(
                    select(func.count(func.distinct(OrderLog.version_id))).where(
                        OrderLog.certificate_id == cert_id
                    )
                )
                or 0
            )
    finally:
        engine.dispose()


def _issue(service: Service, p: Project, name: str) -> str:
    cid: str = service.ok(
        "POST",
        f"/projects/{p.slug}/certificates",
        202,
        json={"issuer": p.issuer_id, "common_name": name},
    )["id"]
    body = service.wait_for(p.slug, cid, ("issued", "failed"))
    assert body["status"] == "issued", body["error"]
    return cid


def _renew(service: Service, p: Project, cid: str) -> None:
    service.ok("POST", f"/projects/{p.slug}/certificates/{cid}/renew", 202)
    body = service.wait_for(p.slug, cid, ("issued", "failed"))
    assert body["status"] == "issued", body["error"]


def test_a_small_budget_refuses_the_next_manual_renewal(small: Service, project: Project) -> None:
    service, p = small, project
    cid = _issue(service, p, "budget.example.test")
    assert _orders_logged(service, cid) == 1  # the first issuance counts (once, not twice)
    _renew(service, p, cid)
    assert _orders_logged(service, cid) == 2
    before = service.ok("GET", f"/projects/{p.slug}/certificates/{cid}")
    events = len(service.timeline(p.slug, cid)["events"])

    refused = service.call("POST", f"/projects/{p.slug}/certificates/{cid}/renew")
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 429 and problem["limit"] == "duplicate_certificates"
    frees = datetime.fromisoformat(problem["retry_at"])
    assert timedelta(days=6, hours=23) < frees - datetime.fromisoformat(before["updated_at"])
    assert int(refused.headers["retry-after"]) > 6 * 86400
    assert "2 certificates for exactly these names" in problem["detail"]
    # nothing was stored or started: same certificate, same timeline, no order counted
    assert service.ok("GET", f"/projects/{p.slug}/certificates/{cid}") == before
    assert len(service.timeline(p.slug, cid)["events"]) == events
    assert _orders_logged(service, cid) == 2

    # other names on the same ACME account: orders 3 and 4 fit, the 5th is refused
    other = _issue(service, p, "budget2.example.test")
    _renew(service, p, other)
    response = service.call(
        "POST",
        f"/projects/{p.slug}/certificates",
        json={"issuer": p.issuer_id, "common_name": "budget3.example.test"},
    )
    assert response.status_code == 429, response.text
    assert response.json()["limit"] == "orders_per_account"
    listed = service.ok("GET", f"/projects/{p.slug}/certificates?q=budget3")
    assert listed["items"] == []
