"""Every lexicon option that holds a credential is a secret: stored encrypted, never answered."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from certautopilot.db.session import make_engine
from certautopilot.dns.providers.lexicon import providers
from certautopilot.dns.schemas import ZoneIn
from certautopilot.plugins import secret_fields
from tests.conftest import Project, Service, store_zone_unchecked

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
    """Stored without the check step: wedos' API is on a public address, which no test
    contacts (the check itself is covered against PowerDNS in test_zone_lifecycle)."""
    base = f"/projects/{project.slug}/zones"
    password = "wedos-pa55word-do-not-echo"
    body = ZoneIn.model_validate(
        {
            "name": "wedos.example.test",
            "provider": "wedos",
            "settings": {"auth_username": "ops", "auth_pass": password},
        }
    )
    zone = store_zone_unchecked(service, project.slug, body)
    assert zone["credentials"] == ["auth_pass"]
    assert zone["settings"]["auth_username"] == "ops"
    assert password not in json.dumps(zone)
    assert password not in json.dumps(service.ok("GET", base))
    engine = make_engine(service.settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT config FROM dns_zones")).all()
            secrets = conn.execute(sa.text("SELECT ciphertext FROM stored_secrets")).all()
    finally:
        engine.dispose()
    assert rows and all(password not in str(r[0]) for r in rows)
    assert secrets and all(password.encode() not in bytes(r[0]) for r in secrets)
