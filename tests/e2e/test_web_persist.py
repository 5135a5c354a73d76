"""Browser: the dns-persist-01 panel of a manual-zone certificate. Pebble does not offer
the challenge, so the page says so in one line and shows no record to publish."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Project, Service
from tests.e2e.conftest import screenshot, sign_in, web_user

pytestmark = pytest.mark.lab


def test_manual_certificate_says_pebble_offers_no_dns_persist(
    service: Service, project: Project, new_page: Any
) -> None:
    name = f"p{uuid.uuid4().hex[:6]}.manual.test"
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name, "auto_renew": False},
    )
    service.wait_for(project.slug, created["id"], ("awaiting_dns",))
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{project.slug}/certificates/{created['id']}")
    line = page.locator("[data-testid=persist-not-offered]")
    line.wait_for(timeout=30_000)
    assert "does not offer dns-persist-01" in line.inner_text()
    assert page.locator("[data-testid=persist-record]").count() == 0
    screenshot(page, "persist-not-offered")
