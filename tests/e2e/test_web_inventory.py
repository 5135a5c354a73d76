"""Browser: the inventory filtered by issuer, sorted (kept across pages), the expiry chart
with its counts and week links; a certificate's distribution status per target with dry
run and redeploy, and the admin's PKCS#12 download that opens with its password."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import select

from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.issuers.models import Issuer
from certautopilot.projects.models import Project as ProjectRow
from tests.conftest import Project, Service
from tests.e2e.conftest import go, screenshot, sign_in, web_user

pytestmark = pytest.mark.lab

# `local` targets write under the temp dir: set before the session's worker starts.
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_ROOTS", tempfile.gettempdir())

# (name, issuer, days from today's midnight UTC (+ hours), status); None: never issued.
ROWS = [
    ("alpha.example.test", "pebble", (3, 2), "issued"),
    ("bravo.example.test", "pebble", (4, 5), "issued"),
    ("charlie.example.test", "corp-ca", (17, 1), "issued"),
    ("delta.example.test", "corp-ca", (36, 9), "issued"),
    ("echo.example.test", "corp-ca", (37, 3), "failed"),
    ("foxtrot.example.test", "corp-ca", (38, 6), "issued"),
    ("golf.example.test", "pebble", (16, 4), "revoked"),  # not counted in the chart
    ("hotel.example.test", "pebble", None, "requested"),
    ("india.example.test", "old-ca", (-3, 0), "issued"),  # expired 3 days ago
] + [(f"zz-{i:02d}.example.test", "pebble", (150, i % 20), "issued") for i in range(30)]
CHART = {0: 2, 2: 1, 5: 3}  # week index -> count; every other week 0


def _seed(service: Service, project: Project) -> dict[str, str]:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            pid = session.scalar(select(ProjectRow.id).where(ProjectRow.slug == project.slug))
            corp = Issuer(project_id=pid, name="corp-ca", kind="acme")
            old = Issuer(project_id=pid, name="old-ca", kind="acme")
            session.add_all([corp, old])
            session.flush()
            ids = {"pebble": project.issuer_id, "corp-ca": corp.id, "old-ca": old.id}
            day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            for n, (name, issuer, when, status) in enumerate(ROWS):
                not_after = day0 + timedelta(days=when[0], hours=when[1]) if when else None
                cert = Certificate(
                    project_id=pid,
                    issuer_id=ids[issuer],
                    common_name=name,
                    names=[name],
                    key_type="ecdsa-p256",
                    status=status,
                    not_after=not_after,
                    created_by="seed",
                    created_at=day0 - timedelta(minutes=n),
                )
                session.add(cert)
                session.flush()
                if not_after is not None:  # what the list shows comes from the version
                    version = CertificateVersion(
                        certificate_id=cert.id,
                        seq=1,
                        status="issued",
                        serial=f"{n:016x}",
                        not_before=not_after - timedelta(days=90),
                        not_after=not_after,
                        fingerprint_sha256="00" * 32,
                    )
                    session.add(version)
                    session.flush()
                    cert.current_version_id = version.id
            return ids
    finally:
        engine.dispose()


def _names(page: Any) -> list[str]:
    return [
        t.strip()
        for t in page.locator("[data-testid=inventory] tbody td:first-child a").all_inner_texts()
    ]


WEEK_BARS = "[data-testid=expiry-chart] .bar:not([data-bar=expired]):not([data-bar=later])"


def _bars(page: Any) -> list[int]:
    """The counts of the chart's week bars (between its "expired" and "later" bars)."""
    return [int(t) for t in page.locator(f"{WEEK_BARS} .n").all_inner_texts()]


def test_inventory_issuer_filter_sort_and_expiry_chart(
    service: Service, project: Project, new_page: Any
) -> None:
    _seed(service, project)
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{project.slug}/certificates")

    chart = page.locator("[data-testid=expiry-chart]")
    assert chart.is_visible()
    assert "When certificates expire" in chart.inner_text()
    assert _bars(page) == [CHART.get(i, 0) for i in range(12)]
    week0 = page.get_by_role("link", name="2 certificates expiring this week, from now")
    assert week0.get_attribute("data-count") == "2"
    # Expired and later are bars too: the zz- certificates, 150 days out, and india.
    assert chart.locator(".bar[data-bar=later]").get_attribute("data-count") == "30"
    assert chart.locator(".bar[data-bar=expired]").get_attribute("data-count") == "1"
    # Coloured by urgency: this week red, the next three amber, then blue.
    fills = chart.locator(".bar .fill")
    tones = [fills.nth(i).get_attribute("class").split()[1] for i in range(14)]
    assert tones == ["u-bad", "u-bad"] + ["u-wait"] * 3 + ["u-ok"] * 8 + ["u-later"]
    # The counts that need attention, each a link to the inventory it counts.
    tiles = page.locator("[data-testid=attention]")
    counts = {
        t: tiles.locator(f"[data-testid=tile-{t}] .n").inner_text()
        for t in ("expired", "7", "30", "failed", "requests")
    }
    assert counts == {"expired": "1", "7": "2", "30": "3", "failed": "1", "requests": "0"}
    screenshot(page, "inventory-chart")

    go(page, tiles.locator("[data-testid=tile-30]"))
    assert sorted(_names(page)) == [
        "alpha.example.test",
        "bravo.example.test",
        "charlie.example.test",
    ]
    assert "not expired yet" in page.locator("[data-testid=when-filter]").inner_text()
    go(page, page.locator("[data-testid=tile-expired]"))
    assert _names(page) == ["india.example.test"]
    go(page, page.locator("[data-testid=tile-failed]"))
    assert _names(page) == ["echo.example.test"]
    page.goto(f"/p/{project.slug}/certificates")

    # Filter by issuer: only corp-ca's four, and the chart follows the filter.
    page.get_by_label("Issuer").select_option(label="corp-ca")
    go(page, page.get_by_role("button", name="Filter"))
    assert sorted(_names(page)) == [
        "charlie.example.test",
        "delta.example.test",
        "echo.example.test",
        "foxtrot.example.test",
    ]
    assert _bars(page) == [0, 0, 1, 0, 0, 3] + [0] * 6

    # Sort by expiry by clicking the column header: ascending, then descending; the
    # issuer filter stays.
    go(page, page.get_by_role("link", name="Expires"))
    assert _names(page) == [
        "charlie.example.test",
        "delta.example.test",
        "echo.example.test",
        "foxtrot.example.test",
    ]
    expires = page.locator("[data-testid=inventory] tbody td:nth-child(5)").all_inner_texts()
    assert expires == sorted(expires) and all(e.startswith("20") for e in expires)
    assert page.locator("th[aria-sort=ascending]").inner_text().lower().startswith("expires")
    go(page, page.get_by_role("link", name="Expires"))
    assert _names(page)[0] == "foxtrot.example.test"
    assert page.get_by_label("Issuer").locator("option:checked").inner_text() == "corp-ca"
    assert page.get_by_label("Sort by").locator("option:checked").inner_text() == "Expires latest"
    screenshot(page, "inventory-issuer-sorted")

    # Sorted by name across pages (25 a page) for the other issuer.
    page.get_by_label("Issuer").select_option(label="pebble")
    page.get_by_label("Sort by").select_option(label="Name A→Z")
    go(page, page.get_by_role("button", name="Filter"))
    one = _names(page)
    assert len(one) == 25
    assert one[:4] == [
        "alpha.example.test",
        "bravo.example.test",
        "golf.example.test",
        "hotel.example.test",
    ]
    assert one[4:] == [f"zz-{i:02d}.example.test" for i in range(21)]
    go(page, page.get_by_role("link", name="Next page"))
    assert _names(page) == [f"zz-{i:02d}.example.test" for i in range(21, 30)]
    assert page.get_by_label("Sort by").locator("option:checked").inner_text() == "Name A→Z"
    assert page.get_by_role("link", name="Next page").count() == 0

    # A bar links to the inventory of its week (revoked ones left out, like the count).
    page.goto(f"/p/{project.slug}/certificates")
    go(page, page.locator(WEEK_BARS).nth(5))
    assert _names(page) == [
        "delta.example.test",
        "echo.example.test",
        "foxtrot.example.test",
    ]
    assert "revoked hidden" in page.locator("[data-testid=week-filter]").inner_text()
    page.goto(f"/p/{project.slug}/certificates")
    go(page, page.locator(WEEK_BARS).nth(2))
    assert _names(page) == ["charlie.example.test"]  # golf, revoked that week, is hidden
    screenshot(page, "inventory-week")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_detail_distribution_status_dry_run_and_pkcs12(
    service: Service, project: Project, new_page: Any, tmp_path: Path
) -> None:
    p = project.slug
    target_dir = Path(tempfile.mkdtemp(prefix="e2e-local-"))
    local = service.ok(
        "POST",
        f"/projects/{p}/targets",
        201,
        json={
            "name": "web-files",
            "kind": "local",
            "local": {"files": {"directory": str(target_dir)}},
        },
    )
    hook = service.ok(
        "POST",
        f"/projects/{p}/targets",
        201,
        json={
            "name": "hook-down",
            "kind": "webhook",
            "webhook": {
                "url": f"https://127.0.0.1:{_closed_port()}/hook",
                "secret": "whsec-0123456789abcdef",
                "timeout_seconds": 2,
            },
            "retry": {"max_attempts": 2, "delay_seconds": 0.2, "backoff": 1},
        },
    )
    name = f"dist-{uuid.uuid4().hex[:6]}.example.test"
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": name,
            "distribution_targets": [local["id"], hook["id"]],
        },
    )
    operator = web_user(
        service, f"op-{uuid.uuid4().hex[:6]}@example.test", project=p, role="operator"
    )

    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{p}/certificates/{created['id']}")
    box = page.locator("[data-testid=distribution]")
    box.locator("tr[data-target=web-files][data-status=succeeded]").wait_for(timeout=90_000)
    box.locator("tr[data-target=hook-down][data-status=failed]").wait_for(timeout=60_000)
    page.locator("#live:not([data-live-url])").wait_for()  # nothing left running: polling stops
    rows = box.locator("tbody tr")
    files_row = box.locator("tr[data-target=web-files]").inner_text()
    assert "local" in files_row and "succeeded" in files_row and "1 of 4" in files_row
    hook_row = box.locator("tr[data-target=hook-down]").inner_text()
    assert "webhook" in hook_row and "failed" in hook_row and "2 of 2" in hook_row
    assert rows.count() == 3  # two targets and the failed one's error
    assert box.locator("[data-testid=deploy-error]").inner_text().strip()
    assert (target_dir / "fullchain.pem").exists()
    screenshot(page, "detail-distribution")

    page.get_by_role("button", name="Dry run").click()
    dry = page.locator("[data-testid=dry-run]")
    assert "nothing was changed" in dry.inner_text()
    assert dry.locator("[data-target=web-files]").get_attribute("data-ok") == "yes"
    assert "ready" in dry.locator("[data-target=web-files]").inner_text()
    assert "would write" in dry.locator("[data-target=web-files]").inner_text()
    assert dry.locator("[data-target=hook-down]").get_attribute("data-ok") == "no"
    assert "would fail" in dry.locator("[data-target=hook-down]").inner_text()
    screenshot(page, "detail-dry-run")

    page.get_by_role("button", name="Redeploy").click()
    page.wait_for_url("**flash=deploy")
    assert "Redeploying" in page.locator(".flash").inner_text()
    page.locator("#live:not([data-live-url])").wait_for(timeout=60_000)
    timeline = page.locator("[data-testid=timeline]").inner_text()
    assert "cert.deploy_requested" in timeline and "cert.deploy_dry_run" in timeline
    assert timeline.count("cert.distributed") == 2

    # PKCS#12: the browser refuses a short password; a good one downloads a file that opens.
    field = page.get_by_label("PKCS#12 password")
    field.fill("short")
    page.get_by_role("button", name="Download PKCS#12").click()
    assert field.evaluate("f => f.validity.tooShort")
    password = "e2e pkcs12 passphrase"
    field.fill(password)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download PKCS#12").click()
    download = info.value
    assert download.suggested_filename == f"{name}.p12"
    saved = tmp_path / "bundle.p12"
    download.save_as(saved)
    key, leaf, cas = pkcs12.load_key_and_certificates(saved.read_bytes(), password.encode())
    assert key is not None and leaf is not None and cas
    shown = page.locator("[data-testid=fingerprint]").inner_text().replace(":", "").lower()
    assert leaf.fingerprint(hashes.SHA256()).hex() == shown
    page.reload()
    assert "key.exported" in page.locator("[data-testid=timeline]").inner_text()
    screenshot(page, "detail-pkcs12")

    # An operator may redeploy but sees no key downloads.
    op_page = new_page()
    sign_in(op_page, operator)
    op_page.goto(f"/p/{p}/certificates/{created['id']}")
    assert op_page.get_by_role("button", name="Redeploy").count() == 1
    assert op_page.get_by_role("button", name="Download PKCS#12").count() == 0
    assert op_page.get_by_role("link", name="Private key").count() == 0
