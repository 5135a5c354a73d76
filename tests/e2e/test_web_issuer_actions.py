"""Browser: Settings → Issuers actions against the lab's Pebble. Test shows each step of
reaching the CA; Disable takes the issuer out of the New certificate form and its API
(a 422 naming ``issuer``), Enable brings it back; Delete is refused with the certificate
that uses it named on the page, and an unused issuer is deleted. A CA that cannot be
reached is said in words, its raw error only behind "Details"."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, add_pebble_issuer, issue_one
from tests.e2e.conftest import go, screenshot, sign_in, web_user

pytestmark = pytest.mark.lab

ADMIN = "admin@example.test"


def _row(page: Any, issuer_id: str) -> Any:
    return page.locator(f"[data-testid=issuer][data-issuer-id='{issuer_id}']")


def test_issuer_tested_disabled_enabled_and_deleted_in_the_browser(
    service: Service, project: Project, lab: LabInfo, new_page: Any
) -> None:
    p, tag = project.slug, uuid.uuid4().hex[:6]
    cn = f"iss-{tag}.example.test"
    cert = issue_one(service, project, cn)
    spare = add_pebble_issuer(service, lab, p, name=f"spare-{tag}")
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{p}/settings/issuers")
    used = _row(page, project.issuer_id)

    go(page, page.get_by_role("button", name="Test pebble"))
    card = page.locator("[data-testid=issuer-test]")
    assert card.get_attribute("data-ok") == "true"
    assert card.locator("h2").inner_text() == "Test of pebble: all steps passed"
    steps = card.locator("[data-testid=issuer-test-step]")
    assert [s.get_attribute("data-step") for s in steps.all()] == ["directory", "account"]
    assert lab.directory_url in steps.nth(0).inner_text()
    screenshot(page, "issuer-tested")

    go(page, page.get_by_role("button", name="Disable pebble"))
    assert "was disabled" in page.locator("[data-testid=issuer-switched]").inner_text()
    assert used.locator("[data-testid=issuer-status]").inner_text() == "disabled"
    page.goto(f"/p/{p}/certificates/new")
    offered = page.locator("#issuer option").all_inner_texts()
    assert "pebble (ACME)" not in offered and f"spare-{tag} (ACME)" in offered
    page.goto(f"/p/{p}/settings/issuers")
    refused = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={"issuer": project.issuer_id, "common_name": f"no-{tag}.example.test"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "issuer"
    go(page, page.get_by_role("button", name="Enable pebble"))
    assert "was enabled" in page.locator("[data-testid=issuer-switched]").inner_text()
    assert used.locator("[data-testid=issuer-status]").inner_text() == "active"

    page.get_by_role("button", name="Delete pebble").click()
    problem = page.locator("[data-testid=issuer-problem]").inner_text()
    assert problem.startswith("Issuer pebble was not deleted")
    assert cert in problem and cn in problem
    assert used.count() == 1

    go(page, page.get_by_role("button", name=f"Delete spare-{tag}"))
    flash = page.locator("[data-testid=issuer-deleted]").inner_text()
    assert flash.startswith(f"Issuer spare-{tag} was deleted")
    assert _row(page, spare["id"]).count() == 0
    service.ok("GET", f"/projects/{p}/issuers/{spare['id']}", 404)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


def _error(page: Any, field: str) -> Any:
    return page.locator(f"[id='err-{field}']")


def test_unreachable_acme_directory_in_words_raw_text_behind_details(
    service: Service, new_page: Any
) -> None:
    slug = f"u-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Unreachable {slug[-4:]}"})
    directory = f"https://127.0.0.1:{_closed_port()}/dir"
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{slug}/settings/issuers")
    form = page.locator("#acme-form")
    form.get_by_label("Name").fill("nobody-home")
    form.get_by_label("Directory URL").fill(directory)
    form.get_by_label("I agree to the CA's terms of service").check()
    form.get_by_role("button", name="Register and add").click()
    page.locator("[data-testid=not-saved]").wait_for()

    error = _error(page, "acme_directory_url")
    said = error.inner_text()
    assert "The CA could not be reached or failed" in said, said
    for raw_sign in ("ConnectionPool", "Max retries", "Errno", "Caused by"):
        assert raw_sign not in said, said
    assert form.get_by_label("Directory URL").get_attribute("aria-invalid") == "true"
    assert form.get_by_label("Directory URL").input_value() == directory
    details = error.locator("details.raw-error")
    assert details.count() == 1
    assert details.locator("summary").inner_text() == "Details"
    assert not details.locator("code").is_visible()
    screenshot(page, "settings-issuer-unreachable-words")

    details.locator("summary").click()
    raw = details.locator("code").inner_text()
    assert "Max retries" in raw and "Errno 111" in raw, raw
    screenshot(page, "settings-issuer-unreachable-details")
    assert service.ok("GET", f"/projects/{slug}/issuers") == []
