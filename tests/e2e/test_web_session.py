"""Web sign-in without a browser: cookie flags, CSRF, sign-out, roles, the CLI password."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from certautopilot.auth.models import User
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import pebble_cert_status
from tests.conftest import Project, Service
from tests.e2e.conftest import PASSWORD, web_user
from tests.integration.test_manual_dns import _publish_by_hand as publish_by_hand


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _sign_in(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf": _csrf(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def test_cookie_flags_csrf_and_sign_out(service: Service, project: Project) -> None:
    user = web_user(
        service, f"s-{uuid.uuid4().hex[:6]}@example.test", project=project.slug, role="viewer"
    )
    app = service.client.app
    with TestClient(app, base_url="https://testserver") as client:
        page = client.get("/login")
        wrong = client.post(
            "/login",
            data={"email": user.email, "password": "not it at all", "csrf": _csrf(page.text)},
        )
        assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
        forged = client.post(
            "/login", data={"email": user.email, "password": PASSWORD, "csrf": "x"}
        )
        assert forged.status_code == 403

        page = client.get("/login")
        ok = client.post(
            "/login",
            data={"email": user.email, "password": PASSWORD, "csrf": _csrf(page.text)},
            follow_redirects=False,
        )
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie

        listing = client.get(f"/p/{project.slug}/certificates")
        assert listing.status_code == 200
        assert "New certificate" not in listing.text  # a viewer is not offered it
        assert project.slug in listing.text  # the project switcher lists the user's project
        csrf = _csrf(listing.text)

        refused = client.post(f"/p/{project.slug}/certificates/new", data={"csrf": csrf})
        assert client.get(f"/p/{project.slug}/certificates/new").status_code == 403
        assert refused.status_code == 403 and "needs the operator role" in refused.text
        no_token = client.post("/logout", data={})
        assert no_token.status_code == 403 and "Form expired" in no_token.text
        out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        after = client.get(f"/p/{project.slug}/certificates", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"].startswith("/login")

    with TestClient(app) as plain:
        _sign_in(plain, user.email)
        other = plain.get("/p/no-such-project/certificates")
        assert other.status_code == 404 and "no project" in other.text


CLI = (sys.executable, "-m", "certautopilot.cli")


def test_cli_set_password_then_sign_in(service: Service) -> None:
    email = f"cli-{uuid.uuid4().hex[:6]}@example.test"
    result = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "user", "set-password", "--email", email],
        input="a long enough secret\n",
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert email in result.stdout
    short = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "user", "set-password", "--email", email],
        input="short\n",
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert short.returncode == 2 and "at least 8" in short.stderr
    with TestClient(service.client.app) as client:
        _sign_in(client, email, "a long enough secret")
        assert client.get("/").status_code == 200
    admin = f"cli-admin-{uuid.uuid4().hex[:6]}@example.test"
    made = subprocess.run(
        [*CLI, "user", "set-password", "--email", admin, "--instance-admin"],
        input="a long enough secret\n",
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    engine = make_engine(service.settings)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(User.email, User.is_instance_admin).where(User.email.in_([email, admin]))
            )
            flags = {row.email: row.is_instance_admin for row in rows}
    finally:
        engine.dispose()
    assert flags == {email: False, admin: True}


def test_inventory_pages_with_the_service_cursor(
    service: Service, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from certautopilot.web.views import certificates as views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    stem = uuid.uuid4().hex[:6]
    for i in range(3):
        service.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": f"pg{i}-{stem}.example.test"},
        )
    user = web_user(service, f"v-{stem}@example.test", project=project.slug, role="viewer")
    with TestClient(service.client.app) as client:
        _sign_in(client, user.email)
        first = client.get(f"/p/{project.slug}/certificates", params={"q": stem})
        assert first.text.count(f"-{stem}.example.test</a>") == 2
        match = re.search(r'href="(\?[^"]*cursor=[^"]+)">Next page', first.text)
        assert match, first.text
        second = client.get(
            f"/p/{project.slug}/certificates" + match.group(1).replace("&amp;", "&")
        )
        assert second.text.count(f"-{stem}.example.test</a>") == 1
        assert "Next page" not in second.text and "First page" in second.text


def test_revoke_from_the_ui_reaches_the_ca(
    service: Service, project: Project, lab: LabInfo
) -> None:
    """The web revoke (a threadpool view) revokes at Pebble and records who did it."""
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "web-revoke.example.test"},
    )
    issued = service.wait_for(p, created["id"], ("issued",))
    admin = web_user(service, f"rv-{uuid.uuid4().hex[:6]}@example.test", project=p, role="admin")
    with TestClient(service.client.app, base_url="https://testserver") as client:
        _sign_in(client, admin.email)
        url = f"/p/{p}/certificates/{created['id']}"
        csrf = _csrf(client.get(url).text)
        unticked = client.post(url + "/revoke", data={"csrf": csrf, "reason": "keyCompromise"})
        assert unticked.status_code == 422 and "tick the confirmation box" in unticked.text
        assert service.ok("GET", f"/projects/{p}/certificates/{created['id']}")["status"] == (
            "issued"
        )
        done = client.post(
            url + "/revoke",
            data={"csrf": csrf, "reason": "keyCompromise", "confirm": "yes"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert done.headers["location"].endswith("?flash=revoked&revoked=1")
        assert "Revoked version 1." in client.get(done.headers["location"]).text
    assert pebble_cert_status(lab, issued["current"]["serial"])["Status"] == "Revoked"
    event = next(
        e for e in service.timeline(p, created["id"])["events"] if e["type"] == "cert.revoked"
    )
    assert event["actor"] == admin.email and event["detail"]["reason"] == "keyCompromise"


def test_dns_confirm_from_the_ui_resumes_the_job(
    service: Service, project: Project, lab: LabInfo
) -> None:
    """ "I've added it" in the web UI: audited as the web user, and the workflow resumes."""
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "web-confirm.manual.test"},
    )
    waiting = service.wait_for(p, created["id"], ("awaiting_dns", "failed"))
    assert waiting["status"] == "awaiting_dns", waiting
    [record] = waiting["pending_action"]["records"]
    publish_by_hand(lab, record["name"], record["value"])
    operator = web_user(
        service, f"dc-{uuid.uuid4().hex[:6]}@example.test", project=p, role="operator"
    )
    with TestClient(service.client.app, base_url="https://testserver") as client:
        _sign_in(client, operator.email)
        url = f"/p/{p}/certificates/{created['id']}"
        csrf = _csrf(client.get(url).text)
        done = client.post(url + "/dns-confirm", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"].endswith("?flash=dns-confirm")
    issued = service.wait_for(p, created["id"], ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    events = service.timeline(p, created["id"])["events"]
    asked = next(e for e in events if e["type"] == "dns.manual.confirm_requested")
    assert asked["actor"] == operator.email


def test_a_settings_button_posted_without_its_token_changes_nothing(
    service: Service, project: Project
) -> None:
    """A forged cross-site POST to Delete or Test (buttons with no other field) is a 403 and
    the zone stays; the same POST with the page's token goes through."""
    email = f"a-{uuid.uuid4().hex[:6]}@example.test"
    admin = web_user(service, email, project=project.slug, role="admin")
    zone = service.ok(
        "POST",
        f"/projects/{project.slug}/zones",
        201,
        json={"name": f"z{uuid.uuid4().hex[:6]}.test", "provider": "manual"},
    )
    base = f"/p/{project.slug}/settings/zones/{zone['id']}"
    with TestClient(service.client.app) as client:
        _sign_in(client, admin.email)
        for action in ("delete", "test"):
            forged = client.post(f"{base}/{action}", data={})
            assert forged.status_code == 403 and "Form expired" in forged.text, action
        assert service.ok("GET", f"/projects/{project.slug}/zones/{zone['id']}")["id"]
        csrf = _csrf(client.get(f"/p/{project.slug}/settings/zones").text)
        done = client.post(f"{base}/delete", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303
    service.ok("GET", f"/projects/{project.slug}/zones/{zone['id']}", 404)
