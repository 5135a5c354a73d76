"""Browser: the New Certificate page shows where each DNS challenge goes (a manual-zone
name delegated by CNAME into example.test) and, for a name outside every zone, the CNAME
to create instead, with a copy button."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Project, Service
from tests.e2e.conftest import screenshot, sign_in, web_user

pytestmark = pytest.mark.lab


def test_new_certificate_shows_delegation_and_delegate_instead(
    service: Service, project: Project, new_page: Any
) -> None:
    admin = web_user(service, "admin@example.test")
    page = new_page()
    sign_in(page, admin)
    page.goto(f"/p/{project.slug}/certificates/new")
    page.get_by_label("Common name").fill("delegated.manual.test")
    page.get_by_label("Subject alternative names").fill("shop.nowhere.test")
    page.locator("[data-testid=delegate-instead]").wait_for()

    delegated = page.locator("[data-testid=challenge][data-name='delegated.manual.test']")
    assert delegated.locator("[data-testid=challenge-zone]").inner_text() == "example.test"
    assert (
        delegated.locator("[data-testid=challenge-record]").inner_text()
        == "_acme-challenge.delegated.manual.test.example.test"
    )
    assert "delegated from _acme-challenge.delegated.manual.test" in delegated.inner_text()

    nowhere = page.locator("[data-testid=challenge][data-name='shop.nowhere.test']")
    assert "in no zone of this project" in nowhere.inner_text()
    cname = nowhere.locator("[data-testid=delegate-cname]").inner_text()
    assert cname == (
        "_acme-challenge.shop.nowhere.test. CNAME _acme-challenge.shop.nowhere.test.example.test."
    )
    button = nowhere.get_by_role("button", name="Copy the CNAME record")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    button.click()
    page.wait_for_function("el => el.textContent === 'Copied'", arg=button.element_handle())
    assert page.evaluate("navigator.clipboard.readText()") == cname
    screenshot(page, "new-certificate-delegate-instead")
