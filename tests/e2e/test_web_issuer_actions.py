"""Browser: Settings → Issuers actions against the lab's Pebble. Test shows each step of
reaching the CA; Disable takes the issuer out of the New certificate form and its API
(a 422 naming ``issuer``), Enable brings it back; Delete is refused with the certificate
that uses it named on the page, and an unused issuer is deleted. An AD CS issuer is edited
against the AD CS double (checked at the CA; a blank password keeps the stored one), and a
CA that cannot be reached is said in words, its raw error only behind "Details"."""

from __future__ import annotations

import json
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


def test_adcs_issuer_edited_checked_at_the_ca_blank_password_kept(
    service: Service, new_page: Any
) -> None:
    from certautopilot_lab.adcs_double import AdcsDouble
    from tests.integration._adcs_fixture import PASSWORD, USER, add_issuer, new_project

    slug = new_project(service)
    with AdcsDouble(auth_modes={"basic", "ntlm"}) as double:
        issuer_id = add_issuer(service, slug, double, "basic")
        api = f"/projects/{slug}/issuers/{issuer_id}"
        name = service.ok("GET", api)["name"]
        p = f"edit_{issuer_id}_"
        page = new_page()
        sign_in(page, web_user(service, ADMIN))
        page.goto(f"/p/{slug}/settings/issuers")
        row = _row(page, issuer_id)
        edit = page.locator(f"[data-testid=issuer-edit-row][data-issuer-id='{issuer_id}']")
        edit.get_by_text(f"Edit the settings of {name}").click()
        form = edit.locator("form[data-testid=issuer-edit]")

        # Filled from the stored settings; the password is not in the page.
        assert form.get_by_label("Web Enrollment URL").input_value() == double.url
        assert form.get_by_label("Templates").input_value() == "WebServer\nWebServerApproval"
        assert form.get_by_label("Authentication").input_value() == "basic"
        assert form.get_by_label("Username").input_value() == USER
        assert form.get_by_label("Password").input_value() == ""
        assert (
            "blank: keep the stored one" in form.locator(f"label[for='{p}password']").inner_text()
        )
        assert form.get_by_label("CA bundle (PEM)").input_value().strip() == (
            double.ca_bundle_pem.strip()
        )
        assert form.get_by_label("Re-check pending requests").input_value() == "600"
        assert form.get_by_label("Give up waiting").input_value() == "30"
        assert not form.get_by_label("Client certificate (PEM)").is_visible()  # not for basic
        assert PASSWORD not in page.content()

        # 1. A wrong password: refused by the CA, next to the field; nothing is saved and
        # the typed password is not sent back; what else was typed is kept.
        form.get_by_label("Password").fill("not-the-password")
        form.get_by_label("Templates").fill("WebServer")
        form.get_by_label("Re-check pending requests").fill("300")
        form.get_by_role("button", name="Check and save").click()
        page.locator("[data-testid=not-saved]").wait_for()
        assert "refused the credentials" in _error(page, f"{p}password").inner_text()
        assert form.get_by_label("Password").get_attribute("aria-invalid") == "true"
        assert form.get_by_label("Password").input_value() == ""
        assert "not-the-password" not in page.content()
        assert page.locator("[data-testid=secrets-not-kept]").is_visible()
        assert form.get_by_label("Templates").input_value() == "WebServer"
        assert form.get_by_label("Re-check pending requests").input_value() == "300"
        unchanged = service.ok("GET", api)["adcs"]
        assert unchanged["templates"] == ["WebServer", "WebServerApproval"]
        assert unchanged["check_interval_seconds"] == 600
        screenshot(page, "settings-adcs-edit-wrong-password")

        # 2. A new username without its password: the stored password is not kept for it.
        form.get_by_label("Username").fill("CORP\\someone-else")
        form.get_by_role("button", name="Check and save").click()
        page.locator("[data-testid=not-saved]").wait_for()
        assert "Type the password" in _error(page, f"{p}password").inner_text()
        assert service.ok("GET", api)["adcs"]["username"] == USER

        # 3. The right edit, the password left blank: checked at the CA with the stored
        # password, saved, and the API shows it.
        form.get_by_label("Username").fill(USER)
        form.get_by_label("Give up waiting").fill("7")
        form.get_by_role("button", name="Check and save").click()
        page.wait_for_url(f"**/settings/issuers?saved={issuer_id}")
        flash = page.locator("[data-testid=issuer-saved]").inner_text()
        assert "was checked at the CA and its settings were saved" in flash
        saved = service.ok("GET", api)["adcs"]
        assert saved["templates"] == ["WebServer"]
        assert saved["check_interval_seconds"] == 300
        assert saved["approval_timeout_seconds"] == 7 * 86_400
        assert saved["username"] == USER and saved["has_password"] is True
        assert "WebServerApproval" not in row.inner_text()
        assert PASSWORD not in page.content()
        screenshot(page, "settings-adcs-edited")

        # The stored password was kept: the Test button signs in with it.
        go(page, row.get_by_role("button", name="Test"))
        card = page.locator("[data-testid=issuer-test]")
        assert card.get_attribute("data-ok") == "true", card.inner_text()

        # Audited like the API's edit: the fields that changed.
        exported = service.call("GET", f"/projects/{slug}/audit", params={"format": "jsonl"})
        updated = [
            e
            for e in map(json.loads, exported.text.splitlines())
            if e["type"] == "issuer.updated" and e["subject_id"] == issuer_id
        ]
        assert len(updated) == 1, updated
        assert updated[0]["actor"] == ADMIN
        assert updated[0]["detail"]["changed"] == [
            "approval_timeout_seconds",
            "check_interval_seconds",
            "templates",
        ]

        # 4. The CA gone: Test says the step failed in words, the raw text behind Details.
        double.stop()
        go(page, row.get_by_role("button", name="Test"))
        failed = page.locator("[data-testid=issuer-test-step][data-ok=false]").first
        said = failed.inner_text()
        assert "ConnectionPool" not in said and "Errno" not in said, said
        raw = failed.locator("details.raw-error")
        assert raw.locator("summary").inner_text() == "Details"
        assert not raw.locator("code").is_visible()
        raw.locator("summary").click()
        assert "Errno" in raw.locator("code").inner_text() or "ConnectionPool" in (
            raw.locator("code").inner_text()
        )
        screenshot(page, "settings-adcs-test-unreachable")


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
