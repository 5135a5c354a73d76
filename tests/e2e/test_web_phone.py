"""Browser at phone width (390 x 844) and desktop (1366 x 900): every page of the UI fits the
screen, with no sideways scrolling (``document.scrollingElement.scrollWidth``), and the
navigation (Requests, Settings, Sign out) is on screen. Screenshots of each page are kept.
The pages and states that only an action reaches are walked by tests/e2e/ui_states.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, issue_one
from tests.e2e.conftest import screenshot, sign_in, web_user
from tests.e2e.ui_states import MoreStates, more_states, walk

pytestmark = pytest.mark.lab

#: The innermost elements wider than the screen, or whose content (a long word) runs past
#: the screen's right edge, outside what scrolls by itself: for the failure message.
TOO_WIDE = """w => {
  const right = e => {
    const box = e.getBoundingClientRect();
    const spills = getComputedStyle(e).overflowX === "visible";
    return Math.max(box.right, spills ? box.left + e.scrollWidth : 0);
  };
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => right(e) > w + 1)
    .filter(e => !(e.parentElement && e.parentElement.closest('.scroll-x, table')));
  return wide.filter(e => !wide.some(o => o !== e && e.contains(o)))
    .slice(0, 8)
    .map(e => `${e.tagName}.${e.className} ${Math.round(right(e))} ${e.textContent.slice(0, 40)}`);
}"""


def pages(slug: str, issued: str, waiting: str, revoked: str) -> list[tuple[str, str]]:
    base = f"/p/{slug}"
    return [
        ("inventory", f"{base}/certificates"),
        ("new-certificate", f"{base}/certificates/new"),
        ("detail-issued", f"{base}/certificates/{issued}"),
        ("detail-awaiting-dns", f"{base}/certificates/{waiting}"),
        ("detail-revoked", f"{base}/certificates/{revoked}"),
        ("requests", f"{base}/requests"),
        ("settings-issuers", f"{base}/settings/issuers"),
        ("settings-zones", f"{base}/settings/zones"),
        ("settings-targets", f"{base}/settings/targets?kind=ssh"),
        ("settings-policy", f"{base}/settings/policy"),
        ("settings-members", f"{base}/settings/members"),
        ("tokens", "/tokens"),
        ("not-found", f"{base}/certificates/nosuchcertificate"),
    ]


def too_wide(page: Any, width: int) -> str:
    """Why the page scrolls sideways at ``width``; empty if it does not."""
    scroll = page.evaluate("() => document.scrollingElement.scrollWidth")
    if scroll <= width:
        return ""
    return f"{scroll} px wide at {width} px: {page.evaluate(TOO_WIDE, width)}"


@pytest.fixture
def certificates(
    service: Service, lab: LabInfo, project: Project
) -> tuple[tuple[str, str, str], MoreStates]:
    """An issued certificate (renewed once: two versions) with a long name, a manual-DNS
    one waiting for its record, a revoked one; and :func:`more_states`."""
    p = project.slug
    long = f"a-rather-long-service-name-{uuid.uuid4().hex[:8]}.example.test"
    issued = issue_one(service, project, long)
    service.ok("POST", f"/projects/{p}/certificates/{issued}/renew", 202)
    service.wait_for(p, issued, ("issued", "failed"))
    waiting = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": f"p{uuid.uuid4().hex[:6]}.manual.test"},
    )["id"]
    revoked = issue_one(service, project, f"revoked-{uuid.uuid4().hex[:8]}.example.test")
    service.ok(
        "POST", f"/projects/{p}/certificates/{revoked}/revoke", 200, json={"reason": "superseded"}
    )
    service.wait_for(p, waiting, ("awaiting_dns",))
    return (issued, waiting, revoked), more_states(service, lab, project, issued)


@pytest.mark.parametrize("width,height", [(390, 844), (1366, 900)])
def test_every_page_fits_the_screen(
    service: Service,
    project: Project,
    certificates: tuple[tuple[str, str, str], MoreStates],
    new_page: Any,
    width: int,
    height: int,
) -> None:
    def sized() -> Any:
        page = new_page()
        page.set_viewport_size({"width": width, "height": height})
        return page

    found: dict[str, str] = {}

    def look(page: Any, name: str) -> None:
        page.locator("main").wait_for()
        if wide := too_wide(page, width):
            found[name] = wide
        screenshot(page, f"w{width}-{name}")

    urls, more = certificates
    page = sized()
    page.goto("/login")
    look(page, "login")
    sign_in(page, web_user(service, "admin@example.test"), goto=False)
    for name, url in pages(project.slug, *urls):
        page.goto(url)
        look(page, name)
    walk(page, sized, service, project, more, look)
    # The navigation is on screen, not beyond its right edge.
    page.goto(f"/p/{project.slug}/certificates")
    for link in ("Requests", "Settings", "API tokens"):
        box = page.get_by_role("link", name=link, exact=True).first.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, link
    box = page.get_by_role("button", name="Sign out").bounding_box()
    assert box is not None and box["x"] + box["width"] <= width
    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())
