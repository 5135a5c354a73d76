"""Browser, keyboard only: live pages update in place. Requesting a certificate and watching
it issue, and a manual-DNS certificate completed with "I've added it", without the mouse;
focus stays where the user put it across the page's live updates, and screen readers are
told each status change (the aria-live #live-announce)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service
from tests.e2e.conftest import screenshot, sign_in, web_user
from tests.e2e.test_web_issuance import _publish

pytestmark = pytest.mark.lab

ACTIVE = (
    "() => { const a = document.activeElement; return a ? (a.id || a.textContent.trim()) : '' }"
)


def tab_to(page: Any, element_id: str, *, limit: int = 80) -> None:
    """Press Tab until the element with ``element_id`` has focus (fails after ``limit``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
    pytest.fail(f"#{element_id} was not reached with Tab; focus is on {page.evaluate(ACTIVE)!r}")


def live_updates(page: Any, count: int) -> None:
    """Waits for ``count`` answers to the page's live requests (the events, not a sleep)."""
    for _ in range(count):
        with page.expect_response(lambda r: "/live" in r.url and r.status == 200, timeout=30_000):
            pass


def test_create_to_issued_by_keyboard_only(
    service: Service, project: Project, new_page: Any
) -> None:
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{project.slug}/certificates/new")
    tab_to(page, "common_name")
    name = f"kb-{uuid.uuid4().hex[:6]}.example.test"
    page.keyboard.type(name)
    page.locator("[data-testid=preflight-ok]").wait_for()
    tab_to(page, "submit")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    live = page.locator("#live")
    assert live.get_attribute("data-live-every") == "1"  # the job works: every second
    live_updates(page, 1)
    page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    # Told to screen readers, in words; nothing polls a settled certificate.
    assert page.locator("#live-announce").inner_text() == "Status: issued"
    assert page.locator("#live-announce").get_attribute("aria-live") == "polite"
    assert live.get_attribute("data-live-url") is None
    assert name in page.locator("[data-testid=names]").inner_text()
    # The Actions card appeared in place, and is reachable by keyboard.
    page.keyboard.press("Tab")
    assert page.get_by_role("button", name="Renew now").count() == 1
    screenshot(page, "keyboard-issued")


def test_manual_dns_by_keyboard_focus_stays_on_ive_added_it(
    service: Service, project: Project, lab: LabInfo, new_page: Any
) -> None:
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{project.slug}/certificates/new")
    tab_to(page, "common_name")
    name = f"k{uuid.uuid4().hex[:6]}.manual.test"
    page.keyboard.type(name)
    page.locator("[data-testid=autorenew-off]").wait_for()
    tab_to(page, "submit")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.locator("#live[data-status=awaiting_dns]").wait_for(timeout=60_000)
    announce = page.locator("#live-announce")
    # Waiting on a person: asked less often, and the page says so.
    page.locator("#live[data-live-every='5']").wait_for()
    assert "waiting for you" in page.locator("[data-testid=live-note]").inner_text()

    # A copy button keeps focus across updates (it lost it within 2.5 s before).
    tab_to(page, "dns-confirm")
    page.keyboard.press("Shift+Tab")
    copy_value = page.evaluate("() => document.activeElement.dataset.copy")
    assert copy_value == "rec-value-1"
    live_updates(page, 2)
    assert page.evaluate("() => document.activeElement.dataset.copy") == "rec-value-1"

    # "I've added it" before the record exists: the page reloads, focus is put back on the
    # button by keyboard, and the live update that brings "Not visible yet" keeps it there.
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    tab_to(page, "dns-confirm")
    page.locator("[data-testid=dns-message]", has_text="Not visible yet").wait_for(timeout=30_000)
    live_updates(page, 1)
    assert page.evaluate("() => document.activeElement.id") == "dns-confirm"
    assert page.locator("#live").get_attribute("data-status") == "awaiting_dns"
    screenshot(page, "keyboard-manual-dns-focus-kept")

    # Focus on the job's "N steps" toggle stays when a new row replaces its group: the
    # row comes from the API (someone else says "I've added it"), after the focus is set.
    group = page.locator("[data-testid=timeline-group]").first
    key, group_id = group.get_attribute("data-key"), group.get_attribute("data-group")
    group.locator("[data-testid=timeline-steps] summary").focus()
    cert_id = page.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    service.ok("POST", f"/projects/{project.slug}/certificates/{cert_id}/dns-confirm", 202)
    page.wait_for_function(
        "k => document.querySelector('[data-testid=timeline-group]').dataset.key !== k",
        arg=key,
        timeout=30_000,
    )
    focused = page.evaluate(
        "() => { const a = document.activeElement; const g = a && a.closest('[data-group]');"
        " return [a ? a.tagName : '', g ? g.dataset.group : ''] }"
    )
    assert focused == ["SUMMARY", group_id], focused
    tab_to(page, "dns-confirm")

    txt_name = page.locator("[data-testid=txt-name]").inner_text().strip()
    txt_value = page.locator("[data-testid=txt-value]").inner_text().strip()
    _publish(lab, txt_name, txt_value)
    with page.expect_navigation():
        page.keyboard.press("Enter")  # focus is still on "I've added it"
    page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    assert announce.inner_text() == "Status: issued"
    # The banner of a finished action clears by itself.
    assert page.locator(".flash").count() == 0
