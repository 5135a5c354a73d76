"""Browser: what a certificate's page says in each state. Versions, "expires in N days",
revocation reasons in plain words; "renewing — the current certificate stays valid until"
while a renewal waits; Retry for a certificate never issued; nothing about renewing on a
revoked certificate, and no empty Actions card."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, add_refused_zone, issue_one
from tests.e2e.conftest import screenshot, sign_in, web_user
from tests.e2e.test_web_issuance import _publish

pytestmark = pytest.mark.lab


def test_issued_renewed_then_revoked(service: Service, project: Project, new_page: Any) -> None:
    p = project.slug
    name = f"dt-{uuid.uuid4().hex[:6]}.example.test"
    cid = issue_one(service, project, name)
    service.ok("POST", f"/projects/{p}/certificates/{cid}/renew", 202)
    service.wait_for(p, cid, ("issued",))
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{p}/certificates/{cid}")
    rows = page.locator("[data-testid=version-row]")
    assert rows.count() == 2
    assert "current" in rows.nth(0).inner_text() and rows.nth(0).get_attribute("data-seq") == "2"
    assert page.locator("[data-testid=expires-in]").inner_text() in (
        "expires in 89 days",
        "expires in 90 days",
    )
    reasons = page.locator("#reason option").all_inner_texts()
    assert reasons[0] == "No particular reason" and len(reasons) == 5
    assert not any("certificateHold" in r or "CRL" in r for r in reasons)
    screenshot(page, "detail-versions")

    # The timeline: one group per version, newest first, in words, the job's steps folded.
    groups = page.locator("[data-testid=timeline-group]")
    assert groups.count() == 2
    assert groups.nth(0).locator("h3").inner_text().startswith("Version 2")
    assert groups.nth(1).locator("h3").inner_text().startswith("Version 1")
    assert "took " in groups.nth(1).locator("h3").inner_text()
    first = groups.nth(1).inner_text()
    assert f"Requested by admin@example.test: {name}, ecdsa-p256, issuer pebble" in first
    assert "Issued version 1: serial " in first and "valid until 20" in first
    assert "Published TXT" not in first  # folded
    steps = groups.nth(1).locator("[data-testid=timeline-steps]")
    steps.locator("summary").click()
    assert f"Published TXT _acme-challenge.{name} in zone example.test" in steps.inner_text()
    assert "Checked DNS: every server serves the record" in steps.inner_text()

    page.get_by_label("Revocation reason").select_option("superseded")
    page.locator("[data-testid=revoke-all-versions]").check()
    page.get_by_label("Yes, revoke this certificate").check()
    page.get_by_role("button", name="Revoke").click()
    page.locator("[data-testid=revoked-flash]").wait_for()
    assert page.locator("#live").get_attribute("data-status") == "revoked"
    assert page.locator("[data-testid=auto-renew]").count() == 0
    assert page.get_by_role("heading", name="Actions").count() == 0
    assert page.locator("[data-testid=expires-in]").count() == 0
    newest = page.locator("[data-testid=timeline-group]").first.inner_text()
    assert "Revoked by admin@example.test (superseded): version 2" in newest
    screenshot(page, "detail-revoked")


def test_failed_before_ever_issued_offers_retry(
    service: Service, project: Project, lab: LabInfo, new_page: Any
) -> None:
    p = project.slug
    zone = f"refused-{uuid.uuid4().hex[:6]}.example.test"
    add_refused_zone(service, lab, p, zone)
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": f"x.{zone}"},
    )["id"]
    service.wait_for(p, cid, ("failed",))
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{p}/certificates/{cid}")
    assert page.get_by_role("button", name="Retry").count() == 1
    assert page.get_by_role("button", name="Renew now").count() == 0
    assert page.get_by_role("button", name="Revoke").count() == 0
    screenshot(page, "detail-failed-retry")


def test_renewing_says_the_current_certificate_stays_valid(
    service: Service, project: Project, lab: LabInfo, new_page: Any
) -> None:
    """A manual-DNS certificate renewing waits for its record: the page says until when
    the current version still serves, and the "Renewal started" banner goes once issued."""
    p = project.slug
    name = f"rn{uuid.uuid4().hex[:6]}.manual.test"
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name},
    )["id"]

    def publish_and_confirm() -> None:
        body = service.wait_for(p, cid, ("awaiting_dns",))
        for record in body["pending_action"]["records"]:
            _publish(lab, record["name"], record["value"])
        service.ok("POST", f"/projects/{p}/certificates/{cid}/dns-confirm", 202)

    publish_and_confirm()
    service.wait_for(p, cid, ("issued",))
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    # Pebble reuses a valid authorization now and then (Service.renew_validating): such a
    # renewal needs no record and is issued at once; renew again until one waits for DNS.
    for _ in range(3):
        current = service.ok("GET", f"/projects/{p}/certificates/{cid}")["current"]
        page.goto(f"/p/{p}/certificates/{cid}")
        page.get_by_role("button", name="Renew now").click()
        page.wait_for_url("**flash=renew")
        settled = "#live[data-status=awaiting_dns], #live[data-status=issued]"
        page.locator(settled).wait_for(timeout=60_000)
        if page.locator("#live").get_attribute("data-status") == "awaiting_dns":
            break
    else:
        pytest.fail("the CA reused an authorization on 3 renewals in a row")
    note = page.locator("[data-testid=renewing]")
    until = current["not_after"][:16].replace("T", " ")
    assert f"stays valid until {until} UTC" in note.inner_text()
    screenshot(page, "detail-renewing")
    publish_and_confirm()
    page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    assert page.locator("[data-testid=renewing]").count() == 0
    assert page.locator(".flash").count() == 0  # "Renewal started" is done


def test_new_certificate_hides_what_does_not_apply_and_submits_from_the_bottom(
    service: Service, project: Project, new_page: Any
) -> None:
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{project.slug}/certificates/new")
    # An ACME issuer: no AD CS template.
    assert not page.get_by_label("AD CS template").is_visible()
    # Bringing a CSR: the names and key come from it.
    page.get_by_label("Bring your own CSR").check()
    assert not page.get_by_label("Common name").is_visible()
    assert not page.locator("input[name=key_type]").first.is_visible()
    page.get_by_label("Bring your own CSR").uncheck()
    assert page.get_by_label("Common name").is_visible()
    # Submit where the form ends, as well as in the panel.
    name = f"bot-{uuid.uuid4().hex[:6]}.example.test"
    page.get_by_label("Common name").fill(name)
    page.locator("[data-testid=preflight-ok]").wait_for()
    bottom = page.locator("#submit-bottom")
    bottom.scroll_into_view_if_needed()
    assert bottom.is_enabled()
    with page.expect_navigation():
        bottom.click()
    page.locator("#live").wait_for()
    assert name in page.locator("h1").inner_text()
