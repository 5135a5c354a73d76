"""Browser: policy warnings block an operator and an admin overrides them; approval by a
second user while the requester cannot approve their own request."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Project, Service
from tests.e2e.conftest import go, screenshot, sign_in, web_user

pytestmark = pytest.mark.lab


def _fill(page: Any, project: Project, name: str, key_type: str) -> None:
    page.goto(f"/p/{project.slug}/certificates/new")
    page.get_by_label("Common name").fill(name)
    page.locator(f"input[name=key_type][value={key_type}]").check()


def test_operator_blocked_by_preflight_warning_admin_overrides(
    service: Service, project: Project, new_page: Any
) -> None:
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"allowed_key_types": ["ecdsa-p256"]})
    operator = web_user(
        service, f"op-{uuid.uuid4().hex[:6]}@example.test", project=p, role="operator"
    )
    admin = web_user(service, "admin@example.test")
    name = f"rsa-{uuid.uuid4().hex[:6]}.example.test"

    page = new_page()
    sign_in(page, operator)
    assert page.locator("[data-testid=role]").inner_text() == "operator"
    _fill(page, project, name, "rsa-2048")
    warning = page.locator("#check-key_type .warn[data-code=key_type_not_allowed]")
    warning.wait_for()
    assert "rsa-2048" in warning.inner_text()
    assert page.locator("#submit").is_disabled()
    assert page.locator("[data-testid=blocked]").is_visible()
    assert page.locator("#override_reason").count() == 0  # operators get no override
    screenshot(page, "operator-blocked-by-preflight")

    # Forcing the button does not help: the service refuses, and the form keeps the input.
    page.evaluate("document.getElementById('submit').disabled = false")
    page.locator("#submit").click()
    page.wait_for_load_state()
    refused = page.locator("[data-testid=not-requested]").inner_text()
    assert "Only a project admin may override it" in refused
    assert page.get_by_label("Common name").input_value() == name
    assert page.locator("input[name=key_type][value=rsa-2048]").is_checked()
    screenshot(page, "operator-refused-input-kept")

    # Back to the default key type: the warning goes and submit opens.
    page.locator("input[name=key_type][value=ecdsa-p256]").check()
    page.locator("[data-testid=preflight-ok]").wait_for()
    assert page.locator("#submit").is_enabled()

    admin_page = new_page()
    sign_in(admin_page, admin)
    _fill(admin_page, project, name, "rsa-2048")
    admin_page.locator("#check-key_type .warn").wait_for()
    admin_page.get_by_label("Reason for the override").fill("Legacy F5 partition speaks RSA only")
    admin_page.locator("input[name='ack[]'][value=key_type_not_allowed]").check()
    screenshot(admin_page, "admin-override")
    admin_page.locator("#submit").click()
    admin_page.wait_for_url(f"**/p/{p}/certificates/*")
    admin_page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    assert "policy.overridden" in admin_page.locator("[data-testid=timeline]").inner_text()
    assert "rsa-2048" in admin_page.content()
    screenshot(admin_page, "admin-override-issued")


def test_approval_by_second_user_requester_cannot_approve(
    service: Service, project: Project, new_page: Any
) -> None:
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    requester = web_user(
        service, f"req-{uuid.uuid4().hex[:6]}@example.test", project=p, role="approver"
    )
    approver = web_user(
        service, f"appr-{uuid.uuid4().hex[:6]}@example.test", project=p, role="approver"
    )
    name = f"appr-{uuid.uuid4().hex[:6]}.example.test"

    page = new_page()
    sign_in(page, requester)
    page.goto(f"/p/{p}/certificates/new")
    assert page.locator("[data-testid=approval-forced]").is_visible()
    page.get_by_label("Common name").fill(name)
    page.locator("[data-testid=preflight-ok]").wait_for()
    page.locator("#submit").click()
    page.wait_for_url(f"**/p/{p}/requests*")
    card = page.locator("[data-testid=request]", has_text=name)
    assert requester.email in card.inner_text()
    assert "self-approval is blocked" in card.locator("[data-testid=cannot-decide]").inner_text()
    assert card.get_by_role("button", name="Approve").count() == 0
    screenshot(page, "requests-own-request")

    other = new_page()
    sign_in(other, approver)
    other.goto(f"/p/{p}/requests")
    card = other.locator("[data-testid=request]", has_text=name)
    assert requester.email in card.locator("[data-testid=requester]").inner_text()
    card.get_by_label("Comment").fill("Looks right")
    screenshot(other, "requests-approver")
    card.get_by_role("button", name="Approve").click()
    other.wait_for_url("**decided=*")
    other.get_by_role("link", name=name).first.click()
    other.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    timeline = other.locator("[data-testid=timeline]").inner_text()
    assert "cert.issued" in timeline
    screenshot(other, "approved-issued")


def test_request_shows_warnings_and_admin_override(
    service: Service, project: Project, new_page: Any
) -> None:
    p = project.slug
    service.ok(
        "PUT",
        f"/projects/{p}/policy",
        json={"approval_required": True, "allowed_key_types": ["ecdsa-p256"]},
    )
    admin = web_user(service, "admin@example.test")
    approver = web_user(
        service, f"appr-{uuid.uuid4().hex[:6]}@example.test", project=p, role="approver"
    )
    name = f"ovr-{uuid.uuid4().hex[:6]}.example.test"

    page = new_page()
    sign_in(page, admin)
    _fill(page, project, name, "ecdsa-p384")
    page.locator("#check-key_type .warn").wait_for()
    page.get_by_label("Reason for the override").fill("HSM only offers P-384")
    page.locator("input[name='ack[]'][value=key_type_not_allowed]").check()
    page.locator("#submit").click()
    page.wait_for_url(f"**/p/{p}/requests*")
    own = page.locator("[data-testid=request]", has_text=name)
    assert "self-approval is blocked" in own.inner_text()  # admins cannot approve their own

    other = new_page()
    sign_in(other, approver)
    other.goto(f"/p/{p}/requests")
    card = other.locator("[data-testid=request]", has_text=name)
    assert "ecdsa-p384 is not allowed" in card.locator(".warn").inner_text()
    assert card.locator("[data-testid=override-reason]").inner_text() == "HSM only offers P-384"
    screenshot(other, "requests-warning-and-override")
    # Rejecting without a comment: said next to the field, in the UI's words, the page kept.
    go(other, card.get_by_role("button", name="Reject"))
    card = other.locator("[data-testid=request]", has_text=name)
    error = card.locator("[data-testid=decision-error]")
    assert error.inner_text() == "Say why you reject it: the requester reads this comment."
    assert other.get_by_role("link", name="Requests").count() == 1  # navigation kept
    assert card.get_by_label("Comment").evaluate("e => e === document.activeElement")
    screenshot(other, "requests-reject-needs-comment")
    card.get_by_label("Comment").fill("Not for this project")
    card.get_by_role("button", name="Reject").click()
    other.wait_for_url("**decided=*")
    rejected = other.locator("[data-testid=request]", has_text=name)
    assert "rejected" in rejected.inner_text() and "Not for this project" in rejected.inner_text()
