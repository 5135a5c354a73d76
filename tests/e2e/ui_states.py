"""Pages and states of the UI that only an action reaches (a form sent, a button pressed, a
certificate in a given state, another user), walked by both whole-UI checks: at 390 and
1366 px, test_web_phone (nothing wider than the screen) and test_web_axe (no serious or
critical axe-core violation). Each passes its own ``look``, called once on every page and
state with its name (the screenshot's); :func:`walk` checks first that the page shows what
a user should see there."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, add_refused_zone
from tests.e2e.conftest import go, sign_in, web_user
from tests.e2e.test_web_issuance import _publish
from tests.integration.test_imports import make_ca, make_leaf, pem

# The local target kind writes only under allowed roots; set before the service starts.
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_ROOTS", tempfile.gettempdir())

#: What a whole-UI check does on a page: ``look(page, name)``.
Look = Callable[[Any, str], None]


@dataclass(frozen=True)
class MoreStates:
    """Certificates and objects of the project for :func:`walk`."""

    issued: str  # an issued certificate, with ``target`` attached (for Dry run)
    failed: str  # never issued: its zone's server refuses the update
    renewing: str  # issued, renewal waiting for its manual DNS record
    target_id: str
    target_name: str
    request_cn: str  # a pending approval request by an operator
    lab: LabInfo


def more_states(service: Service, lab: LabInfo, project: Project, issued: str) -> MoreStates:
    """Makes them on ``project``: what the worker does (issuance, failure) runs side by side."""
    p, tag = project.slug, uuid.uuid4().hex[:6]
    refused = f"refused-{tag}.example.test"
    add_refused_zone(service, lab, p, refused)
    new = f"/projects/{p}/certificates"
    failed = service.ok(
        "POST", new, 202, json={"issuer": project.issuer_id, "common_name": f"x.{refused}"}
    )["id"]
    manual = service.ok(
        "POST", new, 202, json={"issuer": project.issuer_id, "common_name": f"rn{tag}.manual.test"}
    )["id"]

    # A request waiting for approval, by an operator (so an admin may decide it); the
    # policy is back to no rules afterwards, for what else the test requests.
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    operator = f"req-{tag}@example.test"
    web_user(service, operator, project=p, role="operator")
    request_cn = f"pending-{tag}.example.test"
    service.ok(
        "POST",
        new,
        202,
        json={"issuer": project.issuer_id, "common_name": request_cn},
        token=service.token_for(operator),
    )
    service.ok("PUT", f"/projects/{p}/policy", json={})

    # A local target on the issued certificate: its page offers Dry run.
    target_name = f"files-{tag}"
    target = service.ok(
        "POST",
        f"/projects/{p}/targets",
        201,
        json={
            "name": target_name,
            "kind": "local",
            "local": {"files": {"directory": tempfile.mkdtemp(prefix="ui-states-")}},
        },
    )
    service.ok("PUT", f"{new}/{issued}/targets", 200, json={"targets": [target["id"]]})

    # The manual-DNS certificate: issued, then renewing, waiting for its record.
    def publish_and_confirm() -> None:
        body = service.wait_for(p, manual, ("awaiting_dns",))
        for record in body["pending_action"]["records"]:
            _publish(lab, record["name"], record["value"])
        service.ok("POST", f"{new}/{manual}/dns-confirm", 202)

    publish_and_confirm()
    assert service.wait_for(p, manual, ("issued", "failed"), timeout=90)["status"] == "issued"
    for _ in range(3):  # Pebble reuses an authorization now and then: no DNS wait then
        service.ok("POST", f"{new}/{manual}/renew", 202)
        if service.wait_for(p, manual, ("awaiting_dns", "issued"))["status"] == "awaiting_dns":
            break
    assert service.wait_for(p, failed, ("failed",), timeout=90)["status"] == "failed"
    return MoreStates(issued, failed, manual, target["id"], target_name, request_cn, lab)


def _import_files(tmp: Path) -> list[Path]:
    """A certificate with its key and chain, one expired certificate: PEM files."""
    ca = make_ca()
    leaf, key = make_leaf(ca, [f"imported-with-a-long-name-{uuid.uuid4().hex[:8]}.example.org"])
    old, _ = make_leaf(ca, [f"old-{uuid.uuid4().hex[:6]}.example.org"], days=-5)
    files = {
        "fullchain.pem": pem(leaf) + pem(ca[0]),
        "privkey.pem": pem(key),
        "expired.pem": pem(old),
    }
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return [tmp / name for name in files]


def walk(
    page: Any,
    open_page: Callable[[], Any],
    service: Service,
    project: Project,
    more: MoreStates,
    look: Look,
) -> None:
    """``page`` is signed in as the project's admin; ``open_page`` makes a page of a new
    browser context (signed in as nobody) set up as ``page`` is."""
    base = f"/p/{project.slug}"

    # Certificates: failed before ever issued, renewing, a target's dry run.
    page.goto(f"{base}/certificates/{more.failed}")
    page.locator("#live[data-status=failed]").wait_for()
    assert page.get_by_role("button", name="Retry").count() == 1
    look(page, "detail-failed")
    page.goto(f"{base}/certificates/{more.renewing}")
    assert "stays valid until" in page.locator("[data-testid=renewing]").inner_text()
    look(page, "detail-renewing")
    page.goto(f"{base}/certificates/{more.issued}")
    go(page, page.get_by_role("button", name="Dry run"))
    dry = page.locator(f"[data-testid=dry-run] [data-target='{more.target_name}']")
    assert dry.get_attribute("data-ok") == "yes" and "would write" in dry.inner_text()
    look(page, "detail-dry-run")

    # Import: the form, sent with no file, then a result (one certificate of it expired).
    page.goto(f"{base}/import")
    page.get_by_role("heading", name="Import certificates").wait_for()
    look(page, "import")
    go(page, page.get_by_role("button", name="Import", exact=True))
    assert "at least one file" in page.locator("[data-testid=import-error]").inner_text()
    look(page, "import-error")
    with tempfile.TemporaryDirectory(prefix="ui-import-") as tmp:
        page.get_by_label("Files (choose them, or drop them here)").set_input_files(
            _import_files(Path(tmp))
        )
        go(page, page.get_by_role("button", name="Import", exact=True))
    rows = page.locator("[data-testid=import-row][data-outcome=imported]").all_inner_texts()
    assert len(rows) == 2 and any("expired" in r for r in rows), rows
    look(page, "import-result")

    # DNS zones: disabled, a Test result, the CAA panel, the edit page.
    page.goto(f"{base}/settings/zones")
    go(page, page.get_by_role("button", name="Disable sub.example.test", exact=True))
    assert "was disabled" in page.locator("[data-testid=zone-switched]").inner_text()
    row = page.locator("[data-testid=zone]", has_text="sub.example.test")
    assert row.locator("[data-testid=zone-status]").inner_text() == "disabled"
    look(page, "settings-zones-disabled")
    go(page, page.get_by_role("button", name="Test example.test", exact=True))
    assert page.locator("[data-testid=zone-test]").get_attribute("data-ok") == "true"
    look(page, "settings-zones-test")
    go(page, page.get_by_role("link", name="CAA of example.test", exact=True))
    page.locator("[data-testid=zone-caa] [data-testid=caa-issuer]").first.wait_for()
    look(page, "settings-zones-caa")
    go(page, page.get_by_role("link", name="Edit example.test", exact=True))
    assert page.get_by_role("heading", name="Edit zone example.test").is_visible()
    look(page, "settings-zones-edit")

    # Targets: the edit page.
    page.goto(f"{base}/settings/targets/{more.target_id}")
    assert page.get_by_label("Target name").input_value() == more.target_name
    look(page, "settings-targets-edit")

    # Issuers: a CA with no directory at that address (one long word), said next to its field.
    page.goto(f"{base}/settings/issuers")
    page.get_by_text("Add an ACME issuer").click()  # folded while the project has issuers
    form = page.locator("#acme-form")
    form.get_by_label("Name").fill("no-directory")
    missing = f"https://127.0.0.1:{more.lab.acme_port}/dir/{uuid.uuid4().hex * 2}"
    form.get_by_label("Directory URL").fill(missing)
    form.get_by_label("Contact email").fill("pki@example.test")
    form.get_by_label("I agree to the CA's terms of service").check()
    form.get_by_label("CA bundle (PEM)").fill(more.lab.ca_bundle_path.read_text())
    go(page, form.get_by_role("button", name="Register and add"))
    page.locator("[data-testid=not-saved]").wait_for()
    refused = page.locator("[id='err-acme_directory_url']").inner_text()
    assert "refused the account: HTTP 404" in refused and missing in refused, refused
    look(page, "settings-issuers-error")

    # Policy: a pattern that is no regular expression, said next to its row.
    page.goto(f"{base}/settings/policy")
    page.get_by_label("Pattern 1", exact=True).fill("^(test-")
    page.get_by_label("Kind of pattern 1").select_option("regex")
    go(page, page.get_by_role("button", name="Save policy"))
    assert "not a valid regular expression" in page.locator("[id='err-cn_row_0']").inner_text()
    look(page, "settings-policy-error")

    # Requests: one pending, then Reject without a comment.
    page.goto(f"{base}/requests")
    card = page.locator("[data-testid=request]", has_text=more.request_cn)
    assert card.get_by_role("button", name="Approve").is_visible()
    look(page, "requests-pending")
    go(page, card.get_by_role("button", name="Reject"))
    error = page.locator("[data-testid=decision-error]").inner_text()
    assert error == "Say why you reject it: the requester reads this comment."
    look(page, "requests-reject-needs-comment")

    # A member added here: the page with their sign-in link, then the link, opened by them.
    page.goto(f"{base}/settings/members")
    email = f"invited-{uuid.uuid4().hex[:6]}@example.test"
    page.get_by_label("Email", exact=True).fill(email)
    go(page, page.get_by_role("button", name="Add member"))
    link = page.locator("[data-testid=invite-link]").inner_text().strip()
    look(page, "members-invitation")
    invited = open_page()
    invited.goto(urlsplit(link).path)
    assert invited.locator("[data-testid=invite-email]").inner_text() == email
    look(invited, "invite-member")
    invited.get_by_label("New password").fill("a long new passphrase")
    invited.get_by_label("The same password again").fill("another long passphrase")
    go(invited, invited.get_by_role("button", name="Set password and sign in"))
    assert "differ" in invited.get_by_role("alert").inner_text()
    look(invited, "invite-error")

    # Someone in no project: their home page.
    alone = open_page()
    sign_in(alone, web_user(service, f"alone-{uuid.uuid4().hex[:6]}@example.test"))
    assert alone.get_by_role("heading", name="No projects yet").is_visible()
    look(alone, "home-no-projects")
