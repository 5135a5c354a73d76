"""Every lexicon option that holds a credential is a secret: stored encrypted, never answered."""

from __future__ import annotations

import json

import pytest

from certautopilot.dns.providers.lexicon import providers
from certautopilot.plugins import secret_fields
from tests.conftest import Project, Service

# Credentials whose option names say "pass", "psw", "2fa" or "account_info".
CREDENTIALS = [
    ("wedos", "auth_pass"),
    ("infoblox", "auth_psw"),
    ("dnsimple", "auth_2fa"),
    ("googleclouddns", "auth_service_account_info"),
]


@pytest.mark.parametrize(("provider", "option"), CREDENTIALS)
def test_credential_options_are_secret(provider: str, option: str) -> None:
    model = next(c for c in providers() if c.name == provider).config_model
    assert option in secret_fields(model)


def test_a_wedos_password_is_stored_encrypted_and_never_answered(
    service: Service, project: Project
) -> None:
    base = f"/projects/{project.slug}/zones"
    password = "wedos-pa55word-do-not-echo"
    body = {
        "name": "wedos.example.test",
        "provider": "wedos",
        "settings": {"auth_username": "ops", "auth_pass": password},
    }
    zone = service.ok("POST", base, 201, json=body)
    assert zone["credentials"] == ["auth_pass"]
    assert zone["settings"]["auth_username"] == "ops"
    assert password not in json.dumps(zone)
    assert password not in json.dumps(service.ok("GET", base))
