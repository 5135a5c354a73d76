"""The certificate timeline in pages: the API (oldest first by default, as before paging,
or newest first) and the web detail page (newest first, "Older events" pages on).

Events are seeded straight into the service's database (one certificate row with a long
history): what is under test is the paging, not issuance."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from html import unescape

from sqlalchemy import select

from certautopilot.audit import chain as audit_chain
from certautopilot.audit.models import AuditEvent
from certautopilot.certificates.models import Certificate
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.projects.models import Project as ProjectRow
from tests.conftest import Project, Service, sign_in_client

EVENTS = 230


def _seed(service: Service, project: Project, n: int = EVENTS) -> tuple[str, list[str]]:
    """A certificate with ``n`` events; returns its id and the events' messages, oldest
    first (each message names its position)."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            pid = session.scalar(select(ProjectRow.id).where(ProjectRow.slug == project.slug))
            cert = Certificate(
                project_id=pid,
                issuer_id=project.issuer_id,
                common_name="history.example.test",
                names=["history.example.test"],
                key_type="ecdsa-p256",
                status="issued",
                created_by="seed",
            )
            session.add(cert)
            session.flush()
            start = datetime.now(UTC) - timedelta(days=1)
            messages = [f"event {i:04d}" for i in range(n)]
            for i, message in enumerate(messages):
                audit_chain.append(  # in the project's hash chain, as audit.record does
                    session,
                    AuditEvent(
                        at=start + timedelta(seconds=i),
                        project_id=pid,
                        actor="seed",
                        type="cert.renewal.deferred",
                        subject_type="certificate",
                        subject_id=cert.id,
                        detail={"message": message},
                    ),
                )
                session.flush()  # ids in the order written
            return cert.id, messages
    finally:
        engine.dispose()


def _flat(pages: list[list[str]]) -> list[str]:
    return [m for page in pages for m in page]


def _pages(service: Service, url: str, **params: object) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = service.ok("GET", url, params=query)
        pages.append([e["detail"]["message"] for e in page["events"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_api_timeline_pages_both_ways_and_defaults_to_every_event_oldest_first(
    service: Service, project: Project
) -> None:
    cert_id, messages = _seed(service, project)
    url = f"/projects/{project.slug}/certificates/{cert_id}/timeline"

    first = service.ok("GET", url)  # no parameters: oldest first, 100 a page, as before
    assert [e["detail"]["message"] for e in first["events"]] == messages[:100]
    assert first["next_cursor"] and first["step"] is None

    oldest = _pages(service, url, limit=60)
    assert [len(p) for p in oldest] == [60, 60, 60, 50]
    assert _flat(oldest) == messages
    newest = _pages(service, url, order="newest", limit=100)
    assert [len(p) for p in newest] == [100, 100, 30]
    assert _flat(newest) == messages[::-1]

    # A cursor continues only its own order; bad input is a 422 naming the field.
    cursor = service.ok("GET", url, params={"order": "newest", "limit": 5})["next_cursor"]
    r = service.call("GET", url, params={"order": "oldest", "cursor": cursor})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor", r.text
    assert "order=newest" in r.json()["errors"][0]["message"]
    huge = base64.urlsafe_b64encode(b'{"o":"oldest","i":99999999999999999999999}').decode()
    for params in (
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"cursor": huge},  # past BIGINT: still the cursor's 422, never a database error
        {"limit": 0},
        {"limit": 1001},
        {"order": "x"},
    ):
        r = service.call("GET", url, params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"


def _timeline(html: str) -> tuple[list[str], str | None]:
    block = re.search(r'data-testid="timeline"(.*?)data-region="timeline-paging"', html, re.S)
    assert block is not None, html
    # each event in plain words, its message after the colon ("... by seed: event 0042")
    said = re.findall(r'<span class="event">([^<]*)</span>', block.group(1))
    shown = [unescape(text).rpartition(": ")[2] for text in said]
    older = re.search(r'<a href="([^"]+)" data-testid="older-events">', html)
    return shown, unescape(older.group(1)) if older else None


def test_detail_page_shows_newest_events_and_pages_to_older_ones(
    service: Service, project: Project
) -> None:
    cert_id, messages = _seed(service, project)
    sign_in_client(service)
    try:
        url: str | None = f"/p/{project.slug}/certificates/{cert_id}"
        seen: list[list[str]] = []
        while url is not None:
            page = service.client.get(url)
            assert page.status_code == 200, page.text
            shown, url = _timeline(page.text)
            seen.append(shown)
            if len(seen) > 1:
                assert "Newest events" in page.text
        assert [len(p) for p in seen] == [50, 50, 50, 50, 30]
        assert _flat(seen) == messages[::-1]  # newest first, each event once
    finally:
        service.client.cookies.clear()
