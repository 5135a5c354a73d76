"""Refusals on the certificate page stay on it (issue #14 item 7): an action the service
refuses re-renders the page with the refusal at the top in the UI's words, or next to its
field (the PKCS#12 password, the revocation confirmation), with the project's navigation
kept; any other error page keeps the navigation too. Without a browser (TestClient)."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient

from tests.conftest import Project, Service
from tests.e2e.conftest import web_user
from tests.e2e.test_web_session import _csrf, _sign_in


def _nav(html: str, slug: str) -> bool:
    """The project's navigation: its Certificates and Settings links."""
    return f'href="/p/{slug}/certificates"' in html and 'data-testid="nav-settings"' in html


def _text(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</div>', html, re.S)
    assert found, html[:2000]
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def _field_error(html: str, field: str) -> str:
    found = re.search(rf'<div id="err-{field}"[^>]*>(.*?)</div></div>', html, re.S)
    assert found, html[:2000]
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_a_refused_action_is_shown_on_the_certificate_page(
    service: Service, project: Project
) -> None:
    email = f"act-{uuid.uuid4().hex[:6]}@example.test"
    web_user(service, email, project=project.slug, role="admin")
    name = f"act-{uuid.uuid4().hex[:6]}.example.test"
    cert = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name},
    )
    page = f"/p/{project.slug}/certificates/{cert['id']}"
    with TestClient(service.client.app) as client:
        _sign_in(client, email)
        csrf = _csrf(client.get(page).text)
        service.wait_for(project.slug, cert["id"], ("issued",))
        # Renewing through an issuer disabled meanwhile: a 409, on the page, in words.
        issuer = f"/projects/{project.slug}/issuers/{project.issuer_id}"
        service.ok("PATCH", issuer, json={"enabled": False})
        try:
            refused = client.post(f"{page}/renew", data={"csrf": csrf})
        finally:
            service.ok("PATCH", issuer, json={"enabled": True})
        assert refused.status_code == 409
        said = _text(refused.text, "action-error")
        assert said.startswith("Conflict:") and "is disabled" in said, said
        assert _nav(refused.text, project.slug) and name in refused.text

        control = client.post(
            f"{page}/download/certificate.p12", data={"csrf": csrf, "password": "bad\x07password"}
        )
        assert control.status_code == 422
        assert "control characters" in _field_error(control.text, "password")
        top = _text(control.text, "action-error")
        assert "the form below says what to change" in top and "password:" not in top
        assert _nav(control.text, project.slug)

        unconfirmed = client.post(f"{page}/revoke", data={"csrf": csrf, "reason": "superseded"})
        assert unconfirmed.status_code == 422
        assert "tick the confirmation box" in _field_error(unconfirmed.text, "confirm")
        assert (
            service.ok("GET", f"/projects/{project.slug}/certificates/{cert['id']}")["status"]
            == "issued"
        )

        # Any other error page keeps the project's navigation.
        missing = client.get(f"/p/{project.slug}/certificates/no-such-certificate")
        assert missing.status_code == 404 and _nav(missing.text, project.slug)
        assert 'data-testid="error-detail"' in missing.text
