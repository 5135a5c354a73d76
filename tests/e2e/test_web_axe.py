"""Accessibility: axe-core (the npm package, ``make setup`` installs it with ``npm ci``) run
in Chromium on every page and state of the UI, at desktop and phone width; no serious or
critical violation. axe is added as an init script, which runs outside the page's
Content-Security-Policy (so the CSP watch of ``new_page`` stays on). The pages and states
that only an action reaches are walked by tests/e2e/ui_states.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, issue_one
from tests.e2e.conftest import go, screenshot, sign_in, web_user
from tests.e2e.ui_states import MoreStates, more_states, walk

# The local target kind writes only under allowed roots; set before the service starts.
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_ROOTS", tempfile.gettempdir())

pytestmark = pytest.mark.lab

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

RUN_AXE = """async () => {
  const result = await window.axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => `${v.id} (${v.impact}): ${v.help} at ` +
      v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "));
}"""


def axe_page(new_page: Callable[[], Any], width: int, height: int) -> Any:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make setup` (npm ci installs axe-core)")
    page = new_page()
    page.context.add_init_script(path=str(AXE))
    page.set_viewport_size({"width": width, "height": height})
    return page


def check(page: Any, name: str, found: dict[str, list[str]]) -> None:
    page.wait_for_load_state("load")
    violations = page.evaluate(RUN_AXE)
    if violations:
        found[name] = violations
        screenshot(page, f"axe-{name}")


@pytest.fixture
def states(service: Service, lab: LabInfo, project: Project) -> tuple[dict[str, str], MoreStates]:
    p = project.slug
    issued = issue_one(service, project, f"ax-{uuid.uuid4().hex[:6]}.example.test")
    revoked = issue_one(service, project, f"axr-{uuid.uuid4().hex[:6]}.example.test")
    service.ok(
        "POST", f"/projects/{p}/certificates/{revoked}/revoke", 200, json={"reason": "superseded"}
    )
    waiting = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": f"ax{uuid.uuid4().hex[:6]}.manual.test"},
    )["id"]
    service.wait_for(p, waiting, ("awaiting_dns",))
    ids = {"issued": issued, "revoked": revoked, "waiting": waiting}
    return ids, more_states(service, lab, project, issued)


@pytest.mark.parametrize("width,height", [(1366, 900), (390, 844)])
def test_no_serious_or_critical_violations(
    service: Service,
    project: Project,
    states: tuple[dict[str, str], MoreStates],
    new_page: Any,
    width: int,
    height: int,
) -> None:
    p = project.slug
    ids, more = states
    found: dict[str, list[str]] = {}
    page = axe_page(new_page, width, height)
    page.goto("/login")
    check(page, "login", found)
    page.get_by_label("Email").fill("nobody@example.test")
    page.get_by_label("Password").fill("wrong password")
    go(page, page.get_by_role("button", name="Sign in"))
    check(page, "login-error", found)

    invite = subprocess.run(
        [
            sys.executable,
            "-m",
            "certautopilot.cli",
            "user",
            "invite",
            "--email",
            f"ax-{uuid.uuid4().hex[:6]}@example.test",
        ],
        env=service.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    page.goto(urlsplit(invite).path)
    check(page, "invite", found)
    page.goto("/invite/not-a-token")
    check(page, "invite-dead", found)

    sign_in(page, web_user(service, "admin@example.test"))
    base = f"/p/{p}"
    for name, url in [
        ("inventory", f"{base}/certificates"),
        ("inventory-empty", f"{base}/certificates?q=nothing-matches-this"),
        ("inventory-expired", f"{base}/certificates?when=expired"),
        ("new-certificate", f"{base}/certificates/new"),
        ("detail-issued", f"{base}/certificates/{ids['issued']}"),
        ("detail-revoked", f"{base}/certificates/{ids['revoked']}"),
        ("detail-awaiting-dns", f"{base}/certificates/{ids['waiting']}"),
        ("requests", f"{base}/requests"),
        ("requests-all", f"{base}/requests?status="),
        ("requests-none", f"{base}/requests?status=expired"),
        ("settings-issuers", f"{base}/settings/issuers"),
        ("settings-zones", f"{base}/settings/zones"),
        ("settings-targets", f"{base}/settings/targets"),
        ("settings-targets-ssh", f"{base}/settings/targets?kind=ssh"),
        ("settings-policy", f"{base}/settings/policy"),
        ("settings-members", f"{base}/settings/members"),
        ("tokens", "/tokens"),
        ("not-found", f"{base}/certificates/nosuchcertificate"),
    ]:
        page.goto(url)
        check(page, name, found)

    page.goto(f"{base}/certificates/new")
    page.get_by_label("Common name").fill(f"ax-{uuid.uuid4().hex[:6]}.example.test")
    page.locator("[data-testid=preflight-ok]").wait_for()
    check(page, "new-certificate-preflight", found)
    page.get_by_label("Common name").fill("not in any zone.invalid")
    page.locator("#check-common_name .err").wait_for()
    check(page, "new-certificate-error", found)

    page.goto(f"{base}/settings/targets")
    target_name = f"axe-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Target name").fill(target_name)
    page.locator("[id='s_files.directory']").fill("/etc/ssl/private")
    go(page, page.get_by_role("button", name="Add target"))
    check(page, "settings-targets-error", found)
    page.locator("[id='s_files.directory']").fill(tempfile.mkdtemp(prefix="axe-target-"))
    go(page, page.get_by_role("button", name="Add target"))
    go(page, page.get_by_role("button", name="Test").first)
    page.locator("[data-testid=target-test]").wait_for()
    check(page, "settings-targets-test", found)
    go(page, page.get_by_role("button", name=f"Disable {target_name}"))
    page.locator("[data-testid=target-switched]").wait_for()
    check(page, "settings-targets-disabled", found)

    page.goto(f"{base}/settings/issuers")
    go(page, page.get_by_role("button", name="Test pebble"))
    page.locator("[data-testid=issuer-test]").wait_for()
    check(page, "settings-issuers-test", found)
    go(page, page.get_by_role("button", name="Delete pebble"))
    page.locator("[data-testid=issuer-problem]").wait_for()
    check(page, "settings-issuers-delete-refused", found)

    walk(
        page,
        lambda: axe_page(new_page, width, height),
        service,
        project,
        more,
        lambda on, name: check(on, name, found),
    )

    page.goto("/tokens")
    page.get_by_label("Name").fill("axe")
    go(page, page.get_by_role("button", name="Create token"))
    check(page, "tokens-new", found)

    page.get_by_role("button", name="Sign out").click()
    viewer = web_user(service, f"axv-{uuid.uuid4().hex[:6]}@example.test", project=p, role="viewer")
    sign_in(page, viewer)
    page.goto(f"{base}/settings/issuers")
    check(page, "forbidden", found)
    page.goto(f"{base}/certificates/{ids['issued']}")
    check(page, "detail-as-viewer", found)

    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())
