"""The expiry chart reads counts the database keeps (migration 0011's triggers): after a
real issuance, a renewal, a revocation, rows changed or deleted behind the service's back
and a whole project deleted, the histogram still equals what the certificate rows say."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from certautopilot.certificates.models import Certificate, CertificateExpiryCount
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.projects.models import Project as ProjectRow
from tests.conftest import Project, Service

WEEKS = 12


def _db(service: Service) -> Any:
    engine = make_engine(service.settings)
    return engine, make_sessionmaker(engine)


def _pid(session: Any, slug: str) -> str:
    pid: str = session.scalar(select(ProjectRow.id).where(ProjectRow.slug == slug))
    return pid


def _expected(service: Service, slug: str, now: datetime) -> dict[str, Any]:
    """The histogram computed from the certificate rows themselves."""
    engine, sessions = _db(service)
    try:
        with transaction(sessions) as session:
            rows = session.execute(
                select(Certificate.not_after).where(
                    Certificate.project_id == _pid(session, slug),
                    Certificate.not_after.is_not(None),
                    Certificate.status != "revoked",
                )
            ).scalars()
            dates = list(rows)
    finally:
        engine.dispose()
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = [
        sum(
            1
            for d in dates
            if max(day0 + timedelta(days=7 * i), now) <= d < day0 + timedelta(days=7 * (i + 1))
        )
        for i in range(WEEKS)
    ]
    return {
        "weeks": weeks,
        "expired": sum(1 for d in dates if d < now),
        "later": sum(1 for d in dates if d >= day0 + timedelta(weeks=WEEKS)),
        "live": len(dates),
    }


def _assert_exact(service: Service, slug: str) -> dict[str, Any]:
    hist = service.ok("GET", f"/projects/{slug}/certificates/expiry-histogram")
    want = _expected(service, slug, datetime.fromisoformat(hist["now"]))
    got = {
        "weeks": [w["count"] for w in hist["weeks"]],
        "expired": hist["expired"],
        "later": hist["later"],
        "live": hist["expired"] + hist["later"] + sum(w["count"] for w in hist["weeks"]),
    }
    assert got == want
    return got


def _issue(service: Service, slug: str, issuer: str) -> str:
    name = f"count-{uuid.uuid4().hex[:6]}.example.test"
    created = service.ok(
        "POST", f"/projects/{slug}/certificates", 202, json={"issuer": issuer, "common_name": name}
    )
    service.wait_for(slug, created["id"], ("issued",))
    cert_id: str = created["id"]
    return cert_id


def test_histogram_stays_exact_through_issue_renew_revoke_and_delete(
    service: Service, project: Project
) -> None:
    slug = project.slug
    assert _assert_exact(service, slug)["live"] == 0
    first, second, third = (_issue(service, slug, project.issuer_id) for _ in range(3))
    assert _assert_exact(service, slug)["live"] == 3

    service.ok("POST", f"/projects/{slug}/certificates/{first}/renew", 202)
    renewed = service.wait_for(slug, first, ("issued", "failed"))
    assert renewed["status"] == "issued", renewed["error"]
    assert _assert_exact(service, slug)["live"] == 3

    service.ok(
        "POST", f"/projects/{slug}/certificates/{second}/revoke", json={"reason": "superseded"}
    )
    assert _assert_exact(service, slug)["live"] == 2

    # Changes made straight in the database (another tool, a restore) are counted too:
    # one moves into week 2, one expires yesterday, a row is added, one is deleted.
    now = datetime.now(UTC)
    engine, sessions = _db(service)
    try:
        with transaction(sessions) as session:
            pid = _pid(session, slug)
            session.execute(
                update(Certificate)
                .where(Certificate.id == first)
                .values(not_after=now + timedelta(days=15))
            )
            session.execute(
                update(Certificate)
                .where(Certificate.id == third)
                .values(not_after=now - timedelta(days=1))
            )
            extra = Certificate(
                project_id=pid,
                issuer_id=project.issuer_id,
                common_name="seeded.example.test",
                names=["seeded.example.test"],
                key_type="ecdsa-p256",
                status="issued",
                not_after=now + timedelta(days=40),
                created_by="seed",
            )
            session.add(extra)
    finally:
        engine.dispose()
    got = _assert_exact(service, slug)
    assert got["expired"] == 1 and got["live"] == 3 and sum(got["weeks"]) == 2

    engine, sessions = _db(service)
    try:
        with transaction(sessions) as session:
            session.execute(delete(Certificate).where(Certificate.id == third))
    finally:
        engine.dispose()
    assert _assert_exact(service, slug)["live"] == 2

    # Deleting the project (its certificates go by cascade) leaves no count behind.
    engine, sessions = _db(service)
    try:
        with transaction(sessions) as session:
            pid = _pid(session, slug)
            session.execute(delete(ProjectRow).where(ProjectRow.id == pid))
        with transaction(sessions) as session:
            left = session.scalar(
                select(func.coalesce(func.sum(CertificateExpiryCount.n), 0)).where(
                    CertificateExpiryCount.project_id == pid
                )
            )
            assert left == 0
    finally:
        engine.dispose()
