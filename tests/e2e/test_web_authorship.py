"""Who added each issuer, zone and target and who last changed it, and who requested a
certificate, shown in the UI (issue #17 item 5): read from the audit trail, so a change
through the API by another admin shows as theirs; the service's own events do not count
as a change. Without a browser (TestClient)."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient

from tests.conftest import Project, Service
from tests.e2e.conftest import web_user
from tests.e2e.test_web_session import _sign_in


def _authorship(html: str, row_id: str) -> str:
    row = re.search(rf'data-zone-id="{row_id}".*?</tr>', html, re.S)
    assert row, html[:1500]
    found = re.search(r'data-testid="authorship">(.*?)</div>', row.group(0), re.S)
    assert found, row.group(0)
    return " ".join(found.group(1).split())


def test_settings_and_the_certificate_page_say_who_added_and_changed_what(
    service: Service, project: Project
) -> None:
    tag = uuid.uuid4().hex[:6]
    first, second = f"first-{tag}@example.test", f"second-{tag}@example.test"
    web_user(service, first, project=project.slug, role="admin")
    web_user(service, second, project=project.slug, role="admin")
    zones = f"/projects/{project.slug}/zones"
    body = {"name": f"a{tag}.test", "provider": "manual"}
    zone = service.ok("POST", zones, 201, json=body, token=service.token_for(first))
    with TestClient(service.client.app) as client:
        _sign_in(client, second)
        page = client.get(f"/p/{project.slug}/settings/zones").text
        said = _authorship(page, zone["id"])
        assert said.startswith(f"added by {first} on ") and "changed" not in said
        service.ok(
            "PATCH",
            f"{zones}/{zone['id']}",
            json={"enabled": False},
            token=service.token_for(second),
        )
        page = client.get(f"/p/{project.slug}/settings/zones").text
        said = _authorship(page, zone["id"])
        assert f"added by {first}" in said and f"; changed by {second} on " in said

        cert = service.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": f"who-{tag}.example.test"},
            token=service.token_for(first),
        )
        service.wait_for(project.slug, cert["id"], ("issued",))  # the service's own events
        detail = client.get(f"/p/{project.slug}/certificates/{cert['id']}").text
        shown = re.search(r'<dd data-testid="authorship">(.*?)</dd>', detail, re.S)
        assert shown and first in shown.group(1) and "last changed" not in shown.group(1)
