"""Browser: a distribution target through the settings form rendered from the target
plugin registry (Settings → Targets).

A ``local`` target (files on this server, the kind the distribution tests run locally) is
refused at its directory field when the directory is not allowed, then added; its Test
shows each step of the real check passing and writes nothing; after the directory goes,
the Test shows the failing step in words. It is edited (the secret is never echoed back,
and a blank secret keeps the stored one) and deleted."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project, Service, issue_one
from tests.e2e.conftest import go, screenshot, sign_in, web_user
from tests.integration import distribution_servers as ds

# The local kind writes only under allowed roots; set before the session's service starts.
os.environ.setdefault("CERTAUTOPILOT_LOCAL_TARGET_ROOTS", tempfile.gettempdir())

pytestmark = pytest.mark.lab

ADMIN = "admin@example.test"
P12_PASSWORD = "p12-password-typed-in-the-browser"


def _field(page: Any, key: str) -> Any:
    return page.locator(f"[id='{key}']")


def _error(page: Any, key: str) -> str:
    text: str = page.locator(f"[id='err-{key}']").inner_text()
    return text


def _steps(page: Any) -> list[tuple[str, str, str]]:
    rows = page.locator("[data-testid=target-test-step]")
    return [
        (r.get_attribute("data-step"), r.get_attribute("data-ok"), r.inner_text())
        for r in rows.all()
    ]


def test_local_target_added_tested_edited_and_deleted_in_the_browser(
    service: Service, new_page: Any, tmp_path: Path
) -> None:
    slug = f"t-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Targets {slug[-4:]}"})
    directory = Path(tempfile.mkdtemp(prefix="web-target-"))
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{slug}/settings")
    go(page, page.get_by_role("link", name="Targets"))
    assert page.locator("[data-testid=targets]").inner_text().count("No targets yet") == 1
    kinds = page.locator("#kind option").all_inner_texts()
    assert any(k.startswith("local") for k in kinds) and any(k.startswith("ssh") for k in kinds)
    page.get_by_label("Kind").select_option("local")
    go(page, page.get_by_role("button", name="Show its fields"))
    page.locator("#target-form[data-kind=local]").wait_for()
    assert _field(page, "s_pkcs12_password").get_attribute("type") == "password"
    assert _field(page, "s_files.cert").input_value() == "cert.pem"  # the kind's default

    page.get_by_label("Target name").fill("web-files")
    _field(page, "s_files.directory").fill("/etc/ssl/private")
    _field(page, "s_files.pkcs12").fill("bundle.p12")
    _field(page, "s_pkcs12_password").fill(P12_PASSWORD)
    go(page, page.get_by_role("button", name="Add target"))
    page.locator("[data-testid=not-saved]").wait_for()
    assert "/etc/ssl/private" in _error(page, "s_files.directory")
    assert _field(page, "s_pkcs12_password").input_value() == ""  # never echoed back
    assert page.locator("[data-testid=secrets-not-kept]").is_visible()
    assert P12_PASSWORD not in page.content()

    _field(page, "s_files.directory").fill(str(directory))
    _field(page, "s_pkcs12_password").fill(P12_PASSWORD)
    go(page, page.get_by_role("button", name="Add target"))
    page.locator("[data-testid=target-created]").wait_for()
    row = page.locator("[data-testid=target]", has_text="web-files")
    assert "stored encrypted, never shown: pkcs12_password" in row.inner_text()
    assert P12_PASSWORD not in page.content()

    go(page, page.get_by_role("button", name="Test web-files"))
    result = page.locator("[data-testid=target-test]")
    assert result.get_attribute("data-ok") == "true"
    steps = _steps(page)
    assert [(s, ok) for s, ok, _ in steps] == [("directory", "true"), ("writable", "true")]
    assert f"{directory} exists" in steps[0][2]
    assert "bundle.p12" in result.inner_text()  # what a deployment would write
    assert list(directory.iterdir()) == []  # the Test wrote nothing
    screenshot(page, "settings-target-test-passed")

    go(page, page.get_by_role("link", name="Edit web-files"))
    assert _field(page, "s_files.directory").input_value() == str(directory)
    assert _field(page, "s_pkcs12_password").input_value() == ""
    page.get_by_label("Target name").fill("web-files-2")
    _field(page, "s_files.combined").fill("haproxy.pem")
    go(page, page.get_by_role("button", name="Save target"))
    page.locator("[data-testid=target-saved]").wait_for()
    target = next(t for t in service.ok("GET", f"/projects/{slug}/targets") if t["kind"] == "local")
    assert target["name"] == "web-files-2"
    assert target["config"]["files"]["combined"] == "haproxy.pem"
    assert target["credentials"] == ["pkcs12_password"]  # blank on edit kept the secret

    directory.rmdir()
    go(page, page.get_by_role("button", name="Test web-files-2"))
    assert page.locator("[data-testid=target-test]").get_attribute("data-ok") == "false"
    assert _steps(page) == [("directory", "false", f"✗ directory: {directory} missing")]
    screenshot(page, "settings-target-test-failed")

    go(page, page.get_by_role("button", name="Delete web-files-2"))
    page.locator("[data-testid=target-deleted]").wait_for()
    assert service.ok("GET", f"/projects/{slug}/targets") == []


def test_a_target_in_use_is_disabled_detached_then_deleted_in_the_browser(
    service: Service, project: Project, new_page: Any
) -> None:
    """Delete is refused while a certificate uses the target, with the certificate named on
    the page; Disable keeps it attached (what a disabled target skips is in
    test_distribution); Detach from all, then Delete, removes it."""
    p, tag = project.slug, uuid.uuid4().hex[:6]
    directory = Path(tempfile.mkdtemp(prefix="web-target-used-"))
    target = service.ok(
        "POST",
        f"/projects/{p}/targets",
        201,
        json={
            "name": f"used-{tag}",
            "kind": "local",
            "local": {"files": {"directory": str(directory)}},
        },
    )
    cn = f"tgt-{tag}.example.test"
    cert = issue_one(service, project, cn)
    service.ok(
        "PUT", f"/projects/{p}/certificates/{cert}/targets", 200, json={"targets": [target["id"]]}
    )
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{p}/settings/targets")
    row = page.locator(f"[data-testid=target][data-target-id='{target['id']}']")
    assert row.locator("[data-testid=target-used]").inner_text() == "1 certificate"
    assert row.locator("[data-testid=target-status]").inner_text() == "enabled"

    page.get_by_role("button", name=f"Delete used-{tag}").click()
    problem = page.locator("[data-testid=target-problem]").inner_text()
    assert f"Target used-{tag} was not deleted" in problem
    assert f"{cert} ({cn})" in problem
    assert "disable the target instead" in problem

    go(page, page.get_by_role("button", name=f"Disable used-{tag}"))
    assert "receives nothing" in page.locator("[data-testid=target-switched]").inner_text()
    assert row.locator("[data-testid=target-status]").inner_text() == "disabled"
    assert service.ok("GET", f"/projects/{p}/targets/{target['id']}")["enabled"] is False
    screenshot(page, "target-disabled")

    go(page, page.get_by_role("button", name=f"Detach from all: used-{tag} (1 certificate)"))
    flash = page.locator("[data-testid=target-detached]").inner_text()
    assert flash.startswith(f"Target used-{tag} was detached from 1 certificate")
    assert service.ok("GET", f"/projects/{p}/certificates/{cert}/targets") == []
    assert row.locator("[data-testid=target-used]").inner_text() == "0 certificates"

    go(page, page.get_by_role("button", name=f"Delete used-{tag}"))
    deleted = page.locator("[data-testid=target-deleted]").inner_text()
    assert deleted.startswith(f"Target used-{tag} was deleted")
    assert row.count() == 0
    service.ok("GET", f"/projects/{p}/targets/{target['id']}", 404)
    events = service.ok("GET", f"/projects/{p}/certificates/{cert}/timeline")["events"]
    changed = [e for e in events if e["type"] == "cert.targets_changed"]
    assert changed[-1]["detail"] == {"targets": [], "detached": f"used-{tag}"}


@pytest.fixture(scope="module")
def ssh_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ds.SshNginx]:
    try:
        server = ds.start_ssh_nginx(tmp_path_factory.mktemp("ssh-web"), "www.example.test")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    for proc in server.procs:
        ds.stop(proc)


def test_ssh_target_typed_in_the_browser_passes_its_test(
    service: Service, new_page: Any, ssh_nginx: ds.SshNginx
) -> None:
    """The private key goes into a password input, which drops its line breaks: the key
    still works (the form puts them back), and the Test logs in over SSH with it."""
    s = ssh_nginx
    slug = f"t-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"SSH {slug[-4:]}"})
    page = new_page()
    sign_in(page, web_user(service, ADMIN))
    page.goto(f"/p/{slug}/settings/targets?kind=ssh")
    page.locator("#target-form[data-kind=ssh]").wait_for()
    assert _field(page, "s_private_key").get_attribute("type") == "password"
    page.get_by_label("Target name").fill("web-ssh")
    _field(page, "s_host").fill("127.0.0.1")
    _field(page, "s_port").fill(str(s.ssh_port))
    _field(page, "s_username").fill("root")
    _field(page, "s_host_key").fill(s.host_key)
    _field(page, "s_private_key").fill(s.client_key)
    _field(page, "s_files.directory").fill(str(s.cert_dir))
    _field(page, "check_host").fill("127.0.0.1")
    _field(page, "check_port").fill(str(s.https_port))
    _field(page, "check_server_name").fill("www.example.test")
    go(page, page.get_by_role("button", name="Add target"))
    page.locator("[data-testid=target-created]").wait_for()
    assert s.client_key.splitlines()[1] not in page.content()

    before = sorted(p.name for p in s.cert_dir.iterdir())
    go(page, page.get_by_role("button", name="Test web-ssh"))
    steps = _steps(page)
    assert page.locator("[data-testid=target-test]").get_attribute("data-ok") == "true", steps
    names = [step for step, ok, _ in steps if ok == "true"]
    assert names[0] == "connect" and "directory" in names and names[-1] == "post-deploy check"
    assert sorted(p.name for p in s.cert_dir.iterdir()) == before  # nothing written
    would = page.locator("[data-testid=target-test]").inner_text()
    assert f"check that 127.0.0.1:{s.https_port} then serves the new certificate" in would
    screenshot(page, "settings-target-ssh-test")
