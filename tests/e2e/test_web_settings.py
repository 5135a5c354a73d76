"""Browser: the settings pages. An admin adds an ACME issuer (the lab's Pebble) and an
RFC 2136 zone (the lab's BIND) through the forms and a certificate issues with them; edits
the policy (a bad regex is shown next to its row, input kept); adds a member and changes
roles. Any user creates an API token that is shown once, works on /api/v1 and is revoked.
An operator is offered no settings and gets 403 on them."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from typing import Any

import httpx
import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, add_pebble_issuer
from tests.e2e.conftest import go, screenshot, sign_in, web_user

pytestmark = pytest.mark.lab

ADMIN = "admin@example.test"


def _empty_project(service: Service) -> str:
    slug = f"s-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Settings {slug[-4:]}"})
    return slug


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


def _error(page: Any, field: str) -> str:
    text: str = page.locator(f"[id='err-{field}']").inner_text()
    return text


def test_admin_adds_acme_issuer_with_ca_errors_next_to_fields(
    service: Service, lab: LabInfo, new_page: Any
) -> None:
    slug = _empty_project(service)
    bundle = lab.ca_bundle_path.read_text()
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{slug}/certificates")
    page.get_by_role("link", name="Settings").click()
    page.wait_for_url(f"**/p/{slug}/settings/issuers")
    assert "No issuers yet" in page.locator("[data-testid=issuers]").inner_text()
    form = page.locator("#acme-form")

    # 1. No CA bundle: Pebble's TLS certificate is not trusted; the error is on the bundle.
    form.get_by_label("Name").fill("pebble-web")
    form.get_by_label("Directory URL").fill(lab.directory_url)
    form.get_by_label("Contact email").fill("pki@example.test")
    form.get_by_label("I agree to the CA's terms of service").check()
    form.get_by_role("button", name="Register and add").click()
    page.locator("[data-testid=not-saved]").wait_for()
    assert "TLS verification" in _error(page, "acme_ca_bundle_pem")
    assert form.get_by_label("Name").input_value() == "pebble-web"
    assert form.get_by_label("Directory URL").input_value() == lab.directory_url
    assert form.get_by_label("I agree to the CA's terms of service").is_checked()
    screenshot(page, "settings-issuer-tls-error")

    # 2. A directory nobody answers on, with EAB: the error is on the URL; the HMAC key
    # (a secret) is not sent back, and the page says so.
    form.get_by_label("Directory URL").fill(f"https://127.0.0.1:{_closed_port()}/dir")
    form.get_by_label("EAB key id").fill("kid-1")
    form.get_by_label("EAB HMAC key").fill("c2VjcmV0LWhtYWMta2V5LW5vdC10by1iZS1lY2hvZWQ")
    form.get_by_label("CA bundle (PEM)").fill(bundle)
    form.get_by_role("button", name="Register and add").click()
    page.locator("[data-testid=not-saved]").wait_for()
    assert "could not be reached" in _error(page, "acme_directory_url")
    assert form.get_by_label("EAB HMAC key").input_value() == ""
    assert "c2VjcmV0LWhtYWMta2V5" not in page.content()
    assert page.locator("[data-testid=secrets-not-kept]").is_visible()
    assert form.get_by_label("EAB key id").input_value() == "kid-1"
    assert "BEGIN CERTIFICATE" in form.get_by_label("CA bundle (PEM)").input_value()
    screenshot(page, "settings-issuer-unreachable")

    # 3. The lab's directory, its CA bundle, no EAB: the account is registered.
    form.get_by_label("Directory URL").fill(lab.directory_url)
    form.get_by_label("EAB key id").fill("")
    form.get_by_role("button", name="Register and add").click()
    page.wait_for_url("**/settings/issuers?created=pebble-web")
    assert "Issuer pebble-web was added" in page.locator(".flash").inner_text()
    row = page.locator("[data-testid=issuer]", has_text="pebble-web")
    assert row.locator("[data-testid=issuer-status]").inner_text() == "active"
    assert "registered" in row.inner_text() and "ACME" in row.inner_text()
    account = row.locator("[data-testid=account-url]").inner_text()
    assert account.startswith(f"https://127.0.0.1:{lab.acme_port}/")
    assert lab.directory_url in row.inner_text()
    screenshot(page, "settings-issuer-added")
    listed = service.ok("GET", f"/projects/{slug}/issuers")
    assert [(i["name"], i["acme"]["account_url"]) for i in listed] == [("pebble-web", account)]


def test_admin_adds_rfc2136_zone_and_a_certificate_issues(
    service: Service, lab: LabInfo, new_page: Any
) -> None:
    slug = _empty_project(service)
    issuer = add_pebble_issuer(service, lab, slug)
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{slug}/settings/zones")
    page.get_by_label("Zone name").fill("example.test")
    assert page.locator("#zone-form").get_attribute("data-provider") == "rfc2136"  # default
    page.get_by_label("DNS server (primary)").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(lab.dns_port))
    page.get_by_label("TSIG key name").fill(lab.tsig_name)
    page.get_by_label("TSIG algorithm").select_option(lab.tsig_algorithm)
    page.get_by_label("TSIG secret (base64)").fill("not base64 at all!")
    page.get_by_label("Authoritative servers to check").fill(f"127.0.0.1:{lab.dns_port}")
    page.get_by_label("Propagation timeout (seconds)").fill("30")
    page.get_by_role("button", name="Add zone").click()
    page.locator("[data-testid=not-saved]").wait_for()
    assert "must be base64" in _error(page, "tsig_secret")
    assert page.get_by_label("TSIG secret (base64)").input_value() == ""
    assert page.get_by_label("Zone name").input_value() == "example.test"
    assert page.get_by_label("Port").input_value() == str(lab.dns_port)
    assert page.get_by_label("TSIG key name").input_value() == lab.tsig_name
    screenshot(page, "settings-zone-error")

    page.get_by_label("TSIG secret (base64)").fill(lab.tsig_secret)
    page.get_by_role("button", name="Add zone").click()
    page.wait_for_url("**/settings/zones?created=example.test")
    row = page.locator("[data-testid=zone]", has_text="example.test")
    text = row.inner_text()
    assert "RFC 2136" in text and f"127.0.0.1:{lab.dns_port}" in text and "30 s" in text
    assert lab.tsig_secret not in page.content()
    screenshot(page, "settings-zone-added")

    # The zone works against the lab's BIND: a certificate issues through it.
    name = f"zone-{uuid.uuid4().hex[:6]}.example.test"
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer["id"], "common_name": name},
    )
    assert service.wait_for(slug, cert["id"], ("issued", "failed"))["status"] == "issued"

    # Disabled: kept, but a new certificate in it is refused next to its field.
    go(page, page.get_by_role("button", name="Disable example.test"))
    flash = page.locator("[data-testid=zone-switched]").inner_text()
    assert "was disabled" in flash and "settings and certificates are kept" in flash
    assert row.locator("[data-testid=zone-status]").inner_text() == "disabled"
    screenshot(page, "settings-zone-disabled")
    page.goto(f"/p/{slug}/certificates/new")
    page.get_by_label("Common name").fill(f"off-{uuid.uuid4().hex[:6]}.example.test")
    refused = page.locator("#check-common_name .err")
    refused.wait_for()
    assert "zone example.test is disabled" in refused.inner_text()
    page.locator("#submit").click()
    page.locator("[data-testid=not-requested]").wait_for()
    assert "is disabled" in page.locator("#check-common_name").inner_text()
    assert len(service.ok("GET", f"/projects/{slug}/certificates")["items"]) == 1
    page.goto(f"/p/{slug}/settings/zones")
    go(page, page.get_by_role("button", name="Enable example.test"))
    assert "was enabled" in page.locator("[data-testid=zone-switched]").inner_text()
    assert row.locator("[data-testid=zone-status]").inner_text() == "enabled"


def test_policy_edit_bad_regex_next_to_its_row_input_kept(
    service: Service, project: Project, new_page: Any
) -> None:
    p = project.slug
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{p}/settings/policy")
    page.get_by_role("link", name="Policy").first.wait_for()
    page.get_by_label("pebble (ACME)").check()
    page.get_by_label("Denied ACME directories").fill("*acme-staging*")
    page.get_by_label("ECDSA P-256").check()
    page.get_by_label("ECDSA P-384").check()
    page.get_by_label("Minimum RSA size").select_option("3072")
    page.get_by_label("Required SAN suffixes").fill("example.test")
    page.get_by_label("Allowed name suffixes").fill("example.test\nmanual.test")
    page.get_by_label("Pattern 1", exact=True).fill("[*].*")
    page.get_by_label("Pattern 2", exact=True).fill("^(test-")
    page.get_by_label("Kind of pattern 2").select_option("regex")
    page.get_by_label("Approval required").check()
    page.get_by_label("Requests expire after (days)").fill("7")
    page.get_by_role("button", name="Save policy").click()

    page.locator("[data-testid=not-saved]").wait_for()
    assert "not a valid regular expression" in _error(page, "cn_row_1")
    assert _error(page, "cn_row_0") == ""
    assert page.get_by_label("Pattern 2", exact=True).input_value() == "^(test-"
    assert page.get_by_label("Kind of pattern 2").input_value() == "regex"
    assert page.get_by_label("Pattern 1", exact=True).input_value() == "[*].*"
    assert page.get_by_label("ECDSA P-384").is_checked()
    assert not page.get_by_label("RSA 2048").is_checked()
    assert page.get_by_label("Minimum RSA size").input_value() == "3072"
    assert page.get_by_label("Approval required").is_checked()
    assert page.get_by_label("Allowed name suffixes").input_value() == "example.test\nmanual.test"
    assert page.get_by_label("Requests expire after (days)").input_value() == "7"
    screenshot(page, "settings-policy-bad-regex")
    assert service.ok("GET", f"/projects/{p}/policy")["updated_by"] is None  # nothing saved

    page.get_by_label("Pattern 2", exact=True).fill("^test-")
    page.get_by_role("button", name="Save policy").click()
    page.locator("[data-testid=policy-saved]").wait_for()
    rules = service.ok("GET", f"/projects/{p}/policy")["rules"]
    assert rules["allowed_issuers"] == [project.issuer_id]
    assert rules["denied_acme_directories"] == ["*acme-staging*"]
    assert rules["allowed_key_types"] == ["ecdsa-p256", "ecdsa-p384"]
    assert rules["min_rsa_bits"] == 3072 and rules["min_ecdsa_bits"] is None
    assert rules["required_san_suffixes"] == ["example.test"]
    assert rules["allowed_name_suffixes"] == ["example.test", "manual.test"]
    assert rules["forbidden_cn_patterns"] == [
        {"pattern": "[*].*", "kind": "glob"},
        {"pattern": "^test-", "kind": "regex"},
    ]
    assert rules["approval_required"] is True and rules["mandatory_auto_renew"] is False
    assert rules["request_expiry_days"] == 7
    # What was saved is what the page shows again.
    assert page.get_by_label("Pattern 2", exact=True).input_value() == "^test-"
    assert page.get_by_label("pebble (ACME)").is_checked()
    assert "Last changed by admin@example.test" in page.content()
    screenshot(page, "settings-policy-saved")

    # Clearing a row removes the rule.
    page.get_by_label("Pattern 1", exact=True).fill("")
    page.get_by_role("button", name="Save policy").click()
    page.locator("[data-testid=policy-saved]").wait_for()
    rules = service.ok("GET", f"/projects/{p}/policy")["rules"]
    assert rules["forbidden_cn_patterns"] == [{"pattern": "^test-", "kind": "regex"}]


def test_members_add_change_role_remove(service: Service, project: Project, new_page: Any) -> None:
    p = project.slug
    email = f"new-{uuid.uuid4().hex[:6]}@example.test"
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{p}/settings/members")
    me = page.locator(f"[data-testid=member][data-email='{ADMIN}']")
    assert me.get_by_label(f"Role of {ADMIN}").input_value() == "admin"

    form = page.locator("#member-form")
    form.get_by_label("Email").fill(email.upper())  # stored lower-case
    form.get_by_label("Role").select_option("operator")
    form.get_by_role("button", name="Add member").click()
    page.locator("[data-testid=member-saved]").wait_for()
    assert f"{email} is now operator" in page.locator("[data-testid=member-saved]").inner_text()
    row = page.locator(f"[data-testid=member][data-email='{email}']")
    assert row.get_by_label(f"Role of {email}").input_value() == "operator"
    screenshot(page, "settings-member-added")

    row.get_by_label(f"Role of {email}").select_option("approver")
    row.get_by_role("button", name="Change role").click()
    page.locator("[data-testid=member-saved]").wait_for()
    assert f"{email} is now approver" in page.locator("[data-testid=member-saved]").inner_text()
    row = page.locator(f"[data-testid=member][data-email='{email}']")
    assert row.get_by_label(f"Role of {email}").input_value() == "approver"
    members = {m["email"]: m["role"] for m in service.ok("GET", f"/projects/{p}/members")}
    assert members[email] == "approver"

    # The only admin cannot step down: said next to their role, nothing changed.
    me = page.locator(f"[data-testid=member][data-email='{ADMIN}']")
    me.get_by_label(f"Role of {ADMIN}").select_option("viewer")
    me.get_by_role("button", name="Change role").click()
    page.locator("[data-testid=not-saved]").wait_for()
    assert "only admin" in _error(page, f"row:{ADMIN}:role")
    screenshot(page, "settings-member-last-admin")
    members = {m["email"]: m["role"] for m in service.ok("GET", f"/projects/{p}/members")}
    assert members[ADMIN] == "admin"

    page.goto(f"/p/{p}/settings/members")
    row = page.locator(f"[data-testid=member][data-email='{email}']")
    row.get_by_role("button", name=f"Remove {email}").click()
    page.locator("[data-testid=member-removed]").wait_for()
    assert page.locator(f"[data-testid=member][data-email='{email}']").count() == 0
    members = {m["email"]: m["role"] for m in service.ok("GET", f"/projects/{p}/members")}
    assert email not in members
    screenshot(page, "settings-member-removed")


def test_an_admin_removing_themselves_confirms_first(
    service: Service, project: Project, new_page: Any, live_url: str
) -> None:
    p = project.slug
    me = web_user(service, f"self-{uuid.uuid4().hex[:6]}@example.test", project=p, role="admin")
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, me)
    page.goto(f"/p/{p}/settings/members")
    row = page.locator(f"[data-testid=member][data-email='{me.email}']")
    assert row.get_by_role("button", name=f"Remove {me.email}").count() == 0
    remove = row.get_by_role("button", name=f"Remove me ({me.email})")
    confirm = row.locator("[data-testid=confirm-self-removal]")
    # Unticked, the form does not go: the browser names the box that must be ticked.
    assert confirm.evaluate("box => box.form.checkValidity()") is False
    assert "lose access" in row.inner_text()
    screenshot(page, "settings-member-remove-self")
    confirm.check()
    remove.click()
    # Their last project: their web sessions end too (#12 item 7), so back at the sign-in.
    page.wait_for_url(f"{live_url}/login**")
    members = {m["email"] for m in service.ok("GET", f"/projects/{p}/members")}
    assert me.email not in members
    # Without the box (a script posting the form), the service refuses and keeps the member.
    other = web_user(service, f"self2-{uuid.uuid4().hex[:6]}@example.test", project=p, role="admin")
    page2 = new_page()
    page2.on("dialog", lambda dialog: dialog.accept())
    sign_in(page2, other)
    page2.goto(f"/p/{p}/settings/members")
    row2 = page2.locator(f"[data-testid=member][data-email='{other.email}']")
    row2.locator("[data-testid=confirm-self-removal]").evaluate("box => box.required = false")
    row2.get_by_role("button", name=f"Remove me ({other.email})").click()
    error = page2.locator(f"[data-field='row:{other.email}:role']")
    error.wait_for()
    assert "lose access" in error.inner_text()
    assert other.email in {m["email"] for m in service.ok("GET", f"/projects/{p}/members")}


def test_token_shown_once_works_on_the_api_and_is_revoked(
    service: Service, project: Project, new_page: Any, live_url: str
) -> None:
    user = web_user(
        service, f"tok-{uuid.uuid4().hex[:6]}@example.test", project=project.slug, role="viewer"
    )
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, user)
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"**/tokens?p={project.slug}")
    # The project's navigation stays on the tokens page, across creating one.
    nav = page.get_by_role("navigation", name="Project")
    assert nav.get_by_role("link", name="Certificates").count() == 1
    assert "You have no API tokens" in page.locator("[data-testid=tokens]").inner_text()
    page.get_by_label("Name").fill("ci deploy")
    page.get_by_role("button", name="Create token").click()
    card = page.locator("[data-testid=new-token-card]")
    card.wait_for()
    assert "it will not be shown again" in card.inner_text()
    assert card.get_by_role("button", name="Copy the token").is_visible()
    token = page.locator("[data-testid=new-token]").inner_text().strip()
    assert token.startswith("cap_")
    assert nav.get_by_role("link", name="Certificates").count() == 1
    screenshot(page, "tokens-created-once")

    api = f"{live_url}/api/v1"
    ok = httpx.get(f"{api}/projects", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and project.slug in [p["slug"] for p in ok.json()]

    page.goto("/tokens")
    assert token not in page.content()  # shown once only
    assert page.locator("[data-testid=new-token-card]").count() == 0
    row = page.locator("[data-testid=token]", has_text="ci deploy")
    assert token[:10] in row.inner_text()  # a prefix to tell tokens apart
    screenshot(page, "tokens-list")

    row.get_by_role("button", name="Revoke ci deploy").click()
    page.locator("[data-testid=token-revoked]").wait_for()
    assert page.locator("[data-testid=token]", has_text="ci deploy").count() == 0
    gone = httpx.get(f"{api}/projects", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


def test_operator_gets_no_settings_and_403(
    service: Service, project: Project, new_page: Any
) -> None:
    p = project.slug
    operator = web_user(
        service, f"op-{uuid.uuid4().hex[:6]}@example.test", project=p, role="operator"
    )
    page = new_page()
    sign_in(page, operator)
    page.goto(f"/p/{p}/certificates")
    assert page.locator("[data-testid=role]").inner_text() == "operator"
    assert page.get_by_role("link", name="Settings").count() == 0
    assert page.get_by_role("link", name="API tokens").count() == 1  # their own tokens
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    for tab in ("issuers", "zones", "policy", "members"):
        response = page.goto(f"/p/{p}/settings/{tab}")
        assert response is not None and response.status == 403, tab
        assert "needs the admin role" in page.locator("[data-testid=error-detail]").inner_text()
        assert "Ask a project admin" in page.content()
    screenshot(page, "settings-operator-403")
    # A post with a valid form token is refused by the server as well.
    refused = page.request.post(
        f"/p/{p}/settings/members", form={"csrf": csrf, "email": "x@example.test", "role": "admin"}
    )
    assert refused.status == 403
    members = {m["email"] for m in service.ok("GET", f"/projects/{p}/members")}
    assert "x@example.test" not in members


def test_admin_adds_adcs_issuer_checked_at_the_ca(service: Service, new_page: Any) -> None:
    from certautopilot_lab.adcs_double import AdcsDouble
    from tests.integration._adcs_fixture import PASSWORD, USER

    slug = _empty_project(service)
    with AdcsDouble(auth_modes={"basic", "ntlm"}) as double:
        page = new_page()
        sign_in(page, web_user(service, ADMIN))
        page.goto(f"/p/{slug}/settings/issuers")
        page.get_by_text("Add an AD CS issuer").click()
        form = page.locator("#adcs-form")
        form.get_by_label("Name", exact=True).fill("corp-ca")
        form.get_by_label("Web Enrollment URL").fill(double.url)
        form.get_by_label("Templates").fill("WebServer\nNoSuchTemplate")
        form.get_by_label("Authentication").select_option("basic")
        assert not form.get_by_label("Client certificate (PEM)").is_visible()  # not for basic
        form.get_by_label("Username").fill(USER)
        form.get_by_label("Password").fill("not-the-password")
        form.get_by_label("CA bundle (PEM)").fill(double.ca_bundle_pem)
        form.get_by_role("button", name="Check and add").click()
        page.locator("[data-testid=not-saved]").wait_for()
        assert "refused the credentials" in _error(page, "adcs_password")
        assert form.get_by_label("Password").input_value() == ""
        assert "not-the-password" not in page.content()
        assert form.get_by_label("Username").input_value() == USER
        assert form.get_by_label("Templates").input_value() == "WebServer\nNoSuchTemplate"
        screenshot(page, "settings-adcs-wrong-password")

        form.get_by_label("Password").fill(PASSWORD)
        form.get_by_role("button", name="Check and add").click()
        page.locator("[data-testid=not-saved]").wait_for()
        assert "unknown template 'NoSuchTemplate'" in _error(page, "adcs_templates")

        form.get_by_label("Templates").fill("WebServer\nWebServerApproval")
        form.get_by_label("Password").fill(PASSWORD)
        form.get_by_role("button", name="Check and add").click()
        page.wait_for_url("**/settings/issuers?created=corp-ca")
        row = page.locator("[data-testid=issuer]", has_text="corp-ca")
        assert "AD CS" in row.inner_text() and "WebServer, WebServerApproval" in row.inner_text()
        assert "basic as" in row.inner_text()
        assert PASSWORD not in page.content()
        screenshot(page, "settings-adcs-added")


def test_wrong_eab_hmac_is_shown_at_the_eab_fields(
    service: Service, new_page: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import base64
    import os

    from certautopilot_lab.core import start_lab_on_free_ports, stop_lab

    hmac = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    base = tmp_path_factory.mktemp("eab-web")
    eab_lab = start_lab_on_free_ports(base, eab_keys={"kid-1": hmac}, eab_required=True)
    try:
        slug = _empty_project(service)
        page = new_page()
        sign_in(page, web_user(service, ADMIN))
        page.goto(f"/p/{slug}/settings/issuers")
        form = page.locator("#acme-form")
        form.get_by_label("Name").fill("eab-ca")
        form.get_by_label("Directory URL").fill(eab_lab.directory_url)
        form.get_by_label("I agree to the CA's terms of service").check()
        form.get_by_label("EAB key id").fill("kid-1")
        form.get_by_label("EAB HMAC key").fill("A" * 43)
        form.get_by_label("CA bundle (PEM)").fill(eab_lab.ca_bundle_path.read_text())
        form.get_by_role("button", name="Register and add").click()
        page.locator("[data-testid=not-saved]").wait_for()
        assert "the CA refused the account" in _error(page, "acme_eab_hmac_key")
        assert form.get_by_label("EAB key id").input_value() == "kid-1"
        assert form.get_by_label("EAB HMAC key").input_value() == ""
        screenshot(page, "settings-issuer-wrong-eab")

        form.get_by_label("EAB HMAC key").fill(hmac)
        form.get_by_role("button", name="Register and add").click()
        page.wait_for_url("**/settings/issuers?created=eab-ca")
        row = page.locator("[data-testid=issuer]", has_text="eab-ca")
        assert "registered" in row.inner_text() and "EAB key id kid-1" in row.inner_text()
        assert hmac not in page.content()
    finally:
        stop_lab(base)


def test_a_token_made_in_the_browser_has_its_expiry_and_scope(
    service: Service, project: Project, new_page: Any, live_url: str
) -> None:
    email = f"scope-{uuid.uuid4().hex[:6]}@example.test"
    user = web_user(service, email, project=project.slug, role="operator")
    other = f"o-{uuid.uuid4().hex[:8]}"
    service.ok("POST", "/projects", 201, json={"slug": other, "name": other})
    service.ok("POST", f"/projects/{other}/members", 201, json={"email": email, "role": "viewer"})
    page = new_page()
    sign_in(page, user)
    page.goto(f"/tokens?p={project.slug}")
    assert page.get_by_label("Expires after").input_value() == "90"  # the default
    page.get_by_label("Name").fill("nightly report")
    page.get_by_label("Projects").select_option(project.slug)
    page.get_by_label("Role").select_option("admin")
    page.get_by_role("button", name="Create token").click()
    error = page.locator("[data-field=role]")
    error.wait_for()
    assert f"you are operator in {project.slug}" in error.inner_text()
    assert page.get_by_label("Name").input_value() == "nightly report"  # nothing lost
    assert page.get_by_label("Projects").input_value() == project.slug

    page.get_by_label("Role").select_option("viewer")
    page.get_by_label("Expires after").select_option("30")
    page.get_by_role("button", name="Create token").click()
    page.locator("[data-testid=new-token-card]").wait_for()
    token = page.locator("[data-testid=new-token]").inner_text().strip()
    row = page.locator("[data-testid=token]", has_text="nightly report")
    assert row.locator("[data-testid=token-scope]").inner_text() == (
        f"project {project.slug}, at most viewer"
    )
    in_30_days = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%d")
    assert row.locator("[data-testid=token-expiry]").inner_text().strip() == in_30_days
    screenshot(page, "tokens-scoped")

    api, auth = f"{live_url}/api/v1", {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{api}/projects", headers=auth)
    assert [p["slug"] for p in listed.json()] == [project.slug]
    elsewhere = httpx.get(f"{api}/projects/{other}/certificates", headers=auth)
    assert elsewhere.status_code == 403
    assert f"limited to project {project.slug}, role viewer" in elsewhere.json()["detail"]
