"""The rate-limit budget against the real lab: every new order counts (a first issuance,
renewals by hand), and a request over a small configured budget is refused with 429
problem+json naming the limit and when it frees up - the CA is not asked.

The API under test is a second app on the session's database with small limits
(``Settings.rate_limits``); the session's worker issues for both.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.app import create_app
from certautopilot.clock import utcnow
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.errors import RateLimited
from certautopilot.issuers.models import Issuer
from certautopilot.renewal import orders
from certautopilot.renewal.budget import Limits
from certautopilot.renewal.models import OrderLog
from tests.conftest import Project, Service, issue_one

# Small duplicate and account limits; the per-domain one out of reach, because the whole
# session's other tests issue under example.test in the same database.
LIMITS = Limits(duplicate_certs=2, orders_per_account=4, certs_per_domain=1_000_000)


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


def _renew(service: Service, p: Project, cid: str) -> None:
    service.ok("POST", f"/projects/{p.slug}/certificates/{cid}/renew", 202)
    body = service.wait_for(p.slug, cid, ("issued", "failed"))
    assert body["status"] == "issued", body["error"]


def test_a_small_budget_refuses_the_next_manual_renewal(small: Service, project: Project) -> None:
    service, p = small, project
    cid = issue_one(service, p, "budget.example.test")
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
    assert "2 certificates for exactly these names in the last 7 days" in problem["detail"]
    # nothing was stored or started: same certificate, same timeline, no order counted
    assert service.ok("GET", f"/projects/{p.slug}/certificates/{cid}") == before
    assert len(service.timeline(p.slug, cid)["events"]) == events
    assert _orders_logged(service, cid) == 2

    # other names on the same ACME account: orders 3 and 4 fit, the 5th is refused
    other = issue_one(service, p, "budget2.example.test")
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


def test_concurrent_checks_on_one_account_see_each_other(
    service: Service, project: Project
) -> None:
    """Two requests at once on a budget with room for one: the second waits for the first
    to commit (PostgreSQL: advisory lock on the account; SQLite: the write lock) and then
    sees its order: 429, not two orders."""
    one = Limits(orders_per_account=1, certs_per_domain=1_000_000)
    engine = make_engine(service.settings)
    sessions = make_sessionmaker(engine)
    first, second = sessions(), sessions()
    outcome: list[BaseException | None] = []

    def check(session: Session, version_id: str) -> None:
        issuer = session.get(Issuer, project.issuer_id)
        assert issuer is not None
        now = utcnow()
        orders.require_budget(session, issuer=issuer, names=["c.example.test"], now=now, limits=one)
        orders.record_order(
            session,
            issuer=issuer,
            certificate_id="concurrent",
            names=["c.example.test"],
            version_id=version_id,
            at=now,
        )

    def other() -> None:
        try:
            check(second, "second")
            second.commit()
            outcome.append(None)
        except BaseException as exc:
            second.rollback()
            outcome.append(exc)

    try:
        check(first, "first")  # holds the account's lock until it commits
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and not outcome  # waiting for the first to commit
        first.commit()
        thread.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], RateLimited), outcome
        assert outcome[0].limit == "orders_per_account"
    finally:
        first.close()
        second.close()
        engine.dispose()
