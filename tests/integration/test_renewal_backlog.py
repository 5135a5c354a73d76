"""The renewal backlog as people see it: the API (``GET …/renewals/backlog``) and the
inventory page's "Renewals waiting" card, on the live service.

Rows are seeded into the service's database as a storm leaves them: 40 certificates whose
renewal the account's budget held back (renewal time moved on, ``deferred_at`` set) and one
renewing. The drain arithmetic under a full budget is tested at scale in
``test_renewal_ticks.py``; here the budget is the tests' unlimited one, so the tick's pace
sets the estimate.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

from sqlalchemy import select

from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.projects.models import Project as ProjectRow
from certautopilot.renewal.models import RenewalState
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, create_project, sign_in_client

DEFERRED = 40


def _seed(service: Service, project: Project) -> None:
    now = datetime.now(UTC)
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            pid = session.scalar(select(ProjectRow.id).where(ProjectRow.slug == project.slug))
            for i in range(DEFERRED + 1):
                cert = Certificate(
                    project_id=pid,
                    issuer_id=project.issuer_id,
                    common_name=f"held{i}.example.test",
                    names=[f"held{i}.example.test"],
                    key_type="ecdsa-p256",
                    status="issued" if i < DEFERRED else "renewing",
                    not_after=now + timedelta(days=5 + i),
                    next_renewal_at=now + timedelta(hours=2) if i < DEFERRED else None,
                    created_by="seed",
                )
                session.add(cert)
                session.flush()
                version = CertificateVersion(
                    certificate_id=cert.id,
                    seq=1,
                    status="issued",
                    serial=f"{i:016x}",
                    not_before=now - timedelta(days=80),
                    not_after=cert.not_after,
                    fingerprint_sha256="00" * 32,
                )
                session.add(version)
                session.flush()
                cert.current_version_id = version.id
                state = RenewalState(certificate_id=cert.id, attempts=0, warnings_sent=[])
                if i < DEFERRED:
                    state.deferred_at = now - timedelta(minutes=5)
                else:  # a renewal started and not ended: its new version is still pending
                    pending = CertificateVersion(certificate_id=cert.id, seq=2, status="pending")
                    session.add(pending)
                    session.flush()
                    state.version_id = pending.id
                session.add(state)
    finally:
        engine.dispose()


def test_the_backlog_shows_what_waits_and_when_it_clears(service: Service, lab: LabInfo) -> None:
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    empty = service.ok("GET", f"/projects/{p}/renewals/backlog")
    assert empty["waiting"] == 0 and empty["issuers"] == [] and empty["clears_at"] is None

    _seed(service, project)
    body = service.ok("GET", f"/projects/{p}/renewals/backlog")
    assert (body["waiting"], body["renewing"]) == (DEFERRED, 1)
    (row,) = body["issuers"]
    assert row["issuer_id"] == project.issuer_id
    assert (row["due"], row["deferred"], row["renewing"]) == (0, DEFERRED, 1)
    assert row["orders_per_window"] == 900_000  # the tests' budget, 90 % for renewals
    assert row["drain_seconds"] == 30  # one tick of 200 starts them all
    assert "per-domain limits" in body["basis"]

    sign_in_client(service)
    try:
        page = service.client.get(f"/p/{p}/certificates")
        assert page.status_code == 200
        card = re.search(r'data-testid="renewal-backlog">(.*?)</section>', page.text, re.S)
        assert card is not None, page.text
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", card.group(1))).split())
        assert f"{DEFERRED} waiting to be renewed ({DEFERRED} held back" in text
        assert "1 renewing now" in text and "Expected to clear by" in text
    finally:
        service.client.cookies.clear()
