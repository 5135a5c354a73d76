"""Browser: a PowerDNS zone through the settings form rendered from the provider registry.

A wrong API token is refused at the token field in PowerDNS's own words (the zone is
checked at PowerDNS), the right one is saved, the zone's Test shows every step passing
(write, read on PowerDNS's DNS port, remove), the timeout is edited, and delete is refused
in words while a certificate uses the zone; an unused zone is deleted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Service, add_pebble_issuer
from tests.e2e.conftest import screenshot, sign_in, web_user
from tests.integration.dns_servers import PDNS_SCHEMA, PowerDNS, txt_at

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not PDNS_SCHEMA.exists(), reason="needs pdns-backend-sqlite3"),
]

ADMIN = "admin@example.test"


@pytest.fixture(scope="module")
def pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDNS]:
    server = PowerDNS(Path(tmp_path_factory.mktemp("pdns-web"))).start()
    yield server
    server.stop()


def _error(page: Any, field: str) -> str:
    text: str = page.locator(f"[id='err-{field}']").inner_text()
    return text


def test_powerdns_zone_added_tested_edited_and_deleted_in_the_browser(
    service: Service, lab: LabInfo, pdns: PowerDNS, new_page: Any
) -> None:
    slug = f"z-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Zones {slug[-4:]}"})
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{slug}/settings/zones")
    options = page.locator("#provider option").all_inner_texts()
    assert options[0].startswith("rfc2136") and options[1].startswith("manual")
    assert any(o.startswith("powerdns") and o.endswith("(tested)") for o in options)
    assert any(o.startswith("cloudflare") and not o.endswith("(tested)") for o in options)
    page.get_by_label("Provider").select_option("powerdns")
    page.get_by_role("button", name="Show its fields").click()
    page.locator("#zone-form[data-provider=powerdns]").wait_for()
    assert page.locator("#s_auth_token").get_attribute("type") == "password"

    page.get_by_label("Zone name").fill(pdns.zone)
    page.locator("#s_auth_token").fill("wrong-token-value")
    page.locator("#s_pdns_server").fill(pdns.api_url)
    page.get_by_label("Authoritative servers to check").fill(f"127.0.0.1:{pdns.dns_port}")
    page.get_by_label("Propagation timeout (seconds)").fill("20")
    page.get_by_role("button", name="Add zone").click()
    page.locator("[data-testid=not-saved]").wait_for()
    refused = _error(page, "s_auth_token")
    assert "powerdns refused the credentials" in refused and "Unauthorized" in refused, refused
    assert page.locator("#s_auth_token").input_value() == ""  # never echoed back
    assert page.locator("#s_pdns_server").input_value() == pdns.api_url  # the rest is kept
    screenshot(page, "settings-zone-powerdns-wrong-token")

    page.locator("#s_auth_token").fill(pdns.api_key)
    page.get_by_role("button", name="Add zone").click()
    page.wait_for_url(f"**/settings/zones?created={pdns.zone}")
    row = page.locator("[data-testid=zone]", has_text=pdns.zone)
    assert "PowerDNS" in row.inner_text() and "20 s" in row.inner_text()
    assert pdns.api_key not in page.content()

    page.get_by_role("button", name=f"Test {pdns.zone}").click()
    result = page.locator("[data-testid=zone-test]")
    result.wait_for()
    steps = page.locator("[data-testid=zone-test-step]")
    names = [steps.nth(i).get_attribute("data-step") for i in range(steps.count())]
    assert names == ["publish", "list", f"read 127.0.0.1:{pdns.dns_port}", "remove"]
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    assert pdns.api_key not in page.content()
    assert txt_at("127.0.0.1", pdns.dns_port, f"_certautopilot-probe.{pdns.zone}") == set()
    screenshot(page, "settings-zone-powerdns-test")

    page.get_by_role("link", name=f"Edit {pdns.zone}").click()
    page.locator("#zone-form[data-provider=powerdns]").wait_for()
    assert page.locator("#s_pdns_server").input_value() == pdns.api_url
    assert page.locator("#s_auth_token").input_value() == ""  # kept if blank
    page.get_by_label("Propagation timeout (seconds)").fill("45")
    page.get_by_role("button", name="Save zone").click()
    page.locator("[data-testid=zone-saved]").wait_for()
    assert "45 s" in page.locator("[data-testid=zone]", has_text=pdns.zone).inner_text()
    zone = next(z for z in service.ok("GET", f"/projects/{slug}/zones") if z["name"] == pdns.zone)
    assert zone["propagation_timeout_seconds"] == 45 and zone["credentials"] == ["auth_token"]

    # Delete: refused in words while a certificate uses the zone; an unused zone goes.
    issuer = add_pebble_issuer(service, lab, slug)
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer["id"], "common_name": f"www.{pdns.zone}"},
    )
    service.ok(
        "POST", f"/projects/{slug}/zones", 201, json={"name": "manual.test", "provider": "manual"}
    )
    page.goto(f"/p/{slug}/settings/zones")
    page.get_by_role("button", name=f"Delete {pdns.zone}").click()
    problem = page.locator("[data-testid=zone-problem]")
    problem.wait_for()
    assert f"www.{pdns.zone}" in problem.inner_text() and cert["id"] in problem.inner_text()
    assert page.locator("[data-testid=zone]", has_text=pdns.zone).count() == 1
    screenshot(page, "settings-zone-delete-refused")
    page.get_by_role("button", name="Delete manual.test").click()
    page.locator("[data-testid=zone-deleted]").wait_for()
    assert page.locator("[data-testid=zone]", has_text="manual.test").count() == 0
    service.wait_for(slug, cert["id"], ("issued", "failed"), timeout=90)
