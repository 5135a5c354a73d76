"""A hosted-DNS zone's server/URL settings pass the SSRF guard before anything contacts them."""

from __future__ import annotations

import json

from tests.conftest import Project, Service


def test_a_powerdns_zone_pointing_at_a_non_public_address_is_refused(
    service: Service, project: Project
) -> None:
    base = f"/projects/{project.slug}/zones"
    token = "tok-do-not-echo-123"
    for server in ("http://169.254.169.254:8081", "169.254.169.254"):
        body = {
            "name": "hosted.example.test",
            "provider": "powerdns",
            "settings": {"pdns_server": server, "auth_token": token},
        }
        response = service.call("POST", base, json=body)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["settings.pdns_server"]
        assert token not in response.text
    assert "hosted.example.test" not in json.dumps(service.ok("GET", base))
