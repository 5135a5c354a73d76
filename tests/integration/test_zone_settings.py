"""Zones name a DNS provider plugin and give its settings; the rfc2136 body stays valid."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from certautopilot.crypto import service as secrets
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.dns import service as zones
from certautopilot.dns.models import DnsZone
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service


def _fields(response: object) -> list[str]:
    body = response.json()  # type: ignore[attr-defined]
    assert response.status_code == 422, body  # type: ignore[attr-defined]
    return [e["field"] for e in body["errors"]]


def _settings(lab: LabInfo) -> dict[str, object]:
    return {
        "server": lab.dns_host,
        "port": lab.dns_port,
        "tsig_name": lab.tsig_name,
        "tsig_secret": lab.tsig_secret,
    }


def test_settings_body_and_answer(service: Service, lab: LabInfo) -> None:
    # A project of its own: the zone must be one BIND serves (it is checked there).
    p = f"p-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": p, "name": p})
    zone = service.ok(
        "POST",
        f"/projects/{p}/zones",
        201,
        json={"name": "sub.example.test", "provider": "rfc2136", "settings": _settings(lab)},
    )
    assert zone["provider"] == "rfc2136"
    assert zone["credentials"] == ["tsig_secret"]
    assert zone["settings"]["tsig_name"] == lab.tsig_name
    assert "tsig_secret" not in zone["settings"]
    assert zone["rfc2136"]["server"] == lab.dns_host  # the older answer block stays
    assert lab.tsig_secret not in json.dumps(service.ok("GET", f"/projects/{p}/zones"))

    providers = {d["name"]: d for d in service.ok("GET", "/dns-providers")}
    fields = {f["name"]: f for f in providers["rfc2136"]["fields"]}
    assert fields["tsig_secret"]["secret"] and fields["tsig_secret"]["required"]
    assert not fields["port"]["required"] and fields["server"]["help"]
    assert providers["rfc2136"]["tested"] is True
    listed = service.ok("GET", "/plugins")
    assert {"issuers", "dns_providers", "targets", "kek", "notification_channels"} <= set(listed)
    assert {"file", "env"} <= {k["name"] for k in listed["kek"]}


def test_errors_name_the_field(service: Service, project: Project, lab: LabInfo) -> None:
    base = f"/projects/{project.slug}/zones"
    post = lambda body: service.call("POST", base, json=body)  # noqa: E731
    assert _fields(post({"name": "a.example.test", "provider": "nope"})) == ["provider"]
    bad = {**_settings(lab), "tsig_secret": "not base64!!"}
    assert _fields(post({"name": "a.example.test", "provider": "rfc2136", "settings": bad})) == [
        "settings.tsig_secret"
    ]
    assert _fields(post({"name": "a.example.test", "provider": "rfc2136", "rfc2136": bad})) == [
        "rfc2136.tsig_secret"
    ]
    assert _fields(post({"name": "a.example.test", "provider": "rfc2136"})) == ["rfc2136"]
    assert _fields(
        post({"name": "a.example.test", "provider": "manual", "rfc2136": _settings(lab)})
    ) == ["rfc2136"]


def test_a_zone_stored_before_plugins_still_works(
    service: Service, project: Project, lab: LabInfo
) -> None:
    """An rfc2136 zone written by the older code: flat config, the secret alone."""
    engine = make_engine(service.settings)
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as session:
            zone = session.get(DnsZone, project.zone_ids["example.test"])
            assert zone is not None
            kek = service.client.app.state.cap.kek  # type: ignore[attr-defined]
            fresh = zones.provider_for(session, kek, zone)
            settings, _ = zones._stored(zone)
            legacy = DnsZone(
                project_id=zone.project_id,
                name="legacy.example.test",
                provider="rfc2136",
                config={k: settings[k] for k in ("server", "port", "tsig_name", "tsig_algorithm")},
            )
            session.add(legacy)
            session.flush()
            legacy.credentials_secret_id = secrets.store_secret(
                session,
                kek,
                owner_table="dns_zones",
                owner_id=legacy.id,
                purpose="tsig_secret",
                plaintext=lab.tsig_secret.encode(),
            ).id
            session.flush()
            provider = zones.provider_for(session, kek, legacy)
            assert repr(provider) == repr(fresh)
            out = zones.to_out(legacy)
            assert out.credentials == ["tsig_secret"] and out.rfc2136 is not None
            assert out.settings["tsig_name"] == lab.tsig_name
            purposes = set(session.scalars(sa.select(StoredSecret.purpose)))
            assert {"tsig_secret", "dns_settings"} <= purposes
            provider.check("example.test")
    finally:
        engine.dispose()
