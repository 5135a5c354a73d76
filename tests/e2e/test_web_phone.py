"""Browser at phone width (390 x 844) and desktop (1366 x 900): every page of the UI fits the
screen, with no sideways scrolling (``document.scrollingElement.scrollWidth``), and the
navigation (Requests, Settings, Sign out) is on screen. Screenshots of each page are kept."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Project, Service, issue_one
from tests.e2e.conftest import screenshot, sign_in, web_user

pytestmark = pytest.mark.lab

#: The elements wider than the screen, for the failure message.
TOO_WIDE = """w => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > w + 1)
  .filter(e => !(e.parentElement && e.parentElement.closest('.scroll-x, table')))
  .slice(0, 8)
  .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`
    + ` ${e.textContent.slice(0, 40)}`)"""


def pages(slug: str, issued: str, waiting: str) -> list[tuple[str, str]]:
    base = f"/p/{slug}"
    return [
        ("inventory", f"{base}/certificates"),
        ("new-certificate", f"{base}/certificates/new"),
        ("detail-issued", f"{base}/certificates/{issued}"),
        ("detail-awaiting-dns", f"{base}/certificates/{waiting}"),
        ("requests", f"{base}/requests"),
        ("settings-issuers", f"{base}/settings/issuers"),
        ("settings-zones", f"{base}/settings/zones"),
        ("settings-targets", f"{base}/settings/targets?kind=ssh"),
        ("settings-policy", f"{base}/settings/policy"),
        ("settings-members", f"{base}/settings/members"),
        ("tokens", "/tokens"),
        ("not-found", f"{base}/certificates/nosuchcertificate"),
    ]


def assert_fits(page: Any, width: int, name: str) -> None:
    scroll = page.evaluate("() => document.scrollingElement.scrollWidth")
    wide = page.evaluate(TOO_WIDE, width) if scroll > width else []
    assert scroll <= width, f"{name}: {scroll} px wide at {width} px: {wide}"


@pytest.fixture
def certificates(service: Service, project: Project) -> tuple[str, str]:
    """An issued certificate (renewed once: two versions) with a long name, and a
    manual-DNS one waiting for its record."""
    long = f"a-rather-long-service-name-{uuid.uuid4().hex[:8]}.example.test"
    issued = issue_one(service, project, long)
    service.ok("POST", f"/projects/{project.slug}/certificates/{issued}/renew", 202)
    service.wait_for(project.slug, issued, ("issued", "failed"))
    waiting = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": f"p{uuid.uuid4().hex[:6]}.manual.test"},
    )["id"]
    service.wait_for(project.slug, waiting, ("awaiting_dns",))
    return issued, waiting


@pytest.mark.parametrize("width,height", [(390, 844), (1366, 900)])
def test_every_page_fits_the_screen(
    service: Service,
    project: Project,
    certificates: tuple[str, str],
    new_page: Any,
    width: int,
    height: int,
) -> None:
    page = new_page()
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/login")
    assert_fits(page, width, "login")
    screenshot(page, f"w{width}-login")
    sign_in(page, web_user(service, "admin@example.test"), goto=False)
    for name, url in pages(project.slug, *certificates):
        page.goto(url)
        page.locator("main").wait_for()
        assert_fits(page, width, name)
        screenshot(page, f"w{width}-{name}")
    # The navigation is on screen, not beyond its right edge.
    page.goto(f"/p/{project.slug}/certificates")
    for link in ("Requests", "Settings", "API tokens"):
        box = page.get_by_role("link", name=link, exact=True).first.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, link
    box = page.get_by_role("button", name="Sign out").bounding_box()
    assert box is not None and box["x"] + box["width"] <= width
