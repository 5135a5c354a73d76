"""Zones against the lab's BIND: checked when added and edited, edited, tested, deleted, and
the zone of a name found by longest suffix or suggested by walking up SOA records."""

from __future__ import annotations

import json
import uuid
from typing import Any

import dns.resolver
import sqlalchemy as sa

from certautopilot.audit import service as audit
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.deps import get_dns_resolver
from certautopilot.dns import probe
from certautopilot_lab.info import LabInfo
from tests.conftest import WRONG_TSIG_SECRET, Service, add_pebble_issuer


def _project(service: Service) -> str:
    slug = f"p-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Project {slug}"})
    return slug


def _body(lab: LabInfo, name: str = "example.test", **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "rfc2136",
        "nameservers": [f"127.0.0.1:{lab.dns_port}"],
        "propagation_timeout_seconds": 10,
        "settings": {
            "server": "127.0.0.1",
            "port": lab.dns_port,
            "tsig_name": lab.tsig_name,
            "tsig_algorithm": lab.tsig_algorithm,
            "tsig_secret": lab.tsig_secret,
            **settings,
        },
    }


def _errors(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def _db(service: Service, fn: Any) -> Any:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return fn(session)
    finally:
        engine.dispose()


def test_zone_is_checked_at_its_server_when_added(service: Service, lab: LabInfo) -> None:
    slug = _project(service)
    base = f"/projects/{slug}/zones"
    wrong = service.call("POST", base, json=_body(lab, tsig_secret=WRONG_TSIG_SECRET))
    errors = _errors(wrong)
    assert list(errors) == ["settings.tsig_secret"]
    assert "rejected the TSIG signature" in errors["settings.tsig_secret"]
    unknown = service.call("POST", base, json=_body(lab, tsig_name="no-such-key."))
    assert "settings.tsig_name" in _errors(unknown)
    # BIND does not serve this zone: it answers NOTAUTH, shown in its words.
    unserved = _errors(service.call("POST", base, json=_body(lab, name="nowhere.test")))
    assert "(NOTAUTH)" in unserved["settings.tsig_name"]
    # The older body form names its own block.
    legacy = _body(lab, tsig_secret=WRONG_TSIG_SECRET)
    legacy["rfc2136"] = legacy.pop("settings")
    assert list(_errors(service.call("POST", base, json=legacy))) == ["rfc2136.tsig_secret"]
    assert service.ok("GET", base) == []  # nothing was stored
    service.ok("POST", base, 201, json=_body(lab))
    # A manual zone has nothing to check.
    service.ok("POST", base, 201, json={"name": "manual.test", "provider": "manual"})


def test_edit_merges_settings_rotates_the_secret_and_is_checked(
    service: Service, lab: LabInfo
) -> None:
    slug = _project(service)
    zone = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab))
    url = f"/projects/{slug}/zones/{zone['id']}"

    def secret_id() -> str | None:
        from certautopilot.dns.models import DnsZone

        return _db(service, lambda s: s.get(DnsZone, zone["id"]).credentials_secret_id)

    first_secret = secret_id()
    edited = service.ok(
        "PATCH", url, json={"propagation_timeout_seconds": 45, "nameservers": ["127.0.0.1"]}
    )
    assert edited["propagation_timeout_seconds"] == 45
    assert edited["nameservers"] == ["127.0.0.1:53"]
    assert edited["settings"]["tsig_name"] == lab.tsig_name  # settings untouched
    assert secret_id() == first_secret  # no secret given: the blob stays

    # A wrong secret is checked at BIND and refused; nothing changes.
    refused = service.call("PATCH", url, json={"settings": {"tsig_secret": WRONG_TSIG_SECRET}})
    assert "rejected the TSIG signature" in _errors(refused)["settings.tsig_secret"]
    assert secret_id() == first_secret
    bad_field = service.call("PATCH", url, json={"settings": {"port": 0}})
    assert list(_errors(bad_field)) == ["settings.port"]
    assert list(_errors(service.call("PATCH", url, json={"name": "x.test"}))) == ["name"]

    # The right secret again: a new encrypted blob, the old ciphertext deleted.
    rotated = service.ok(
        "PATCH",
        url,
        json={
            "settings": {"tsig_secret": lab.tsig_secret},
            "nameservers": [f"127.0.0.1:{lab.dns_port}"],
        },
    )
    assert lab.tsig_secret not in json.dumps(rotated) and rotated["credentials"] == ["tsig_secret"]
    new_secret = secret_id()
    assert new_secret and new_secret != first_secret
    assert _db(service, lambda s: s.get(StoredSecret, first_secret)) is None

    events = _db(
        service,
        lambda s: [
            (e.type, e.detail)
            for e in audit.events_for(s, subject_type="zone", subject_id=zone["id"])
        ],
    )
    updates = [d for t, d in events if t == "zone.updated"]
    assert updates[0]["fields"] == ["nameservers", "propagation_timeout_seconds"]
    assert updates[1]["fields"] == ["settings.tsig_secret", "nameservers"]
    assert lab.tsig_secret not in json.dumps(events)

    # The zone still works: its Test passes through the edited settings.
    assert service.ok("POST", f"{url}/test")["ok"] is True


def test_zone_test_reports_each_step(service: Service, lab: LabInfo) -> None:
    slug = _project(service)
    zone = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab))
    result = service.ok("POST", f"/projects/{slug}/zones/{zone['id']}/test")
    assert result["ok"] is True, result
    steps = [s["step"] for s in result["steps"]]
    assert steps == ["publish", "list", f"read 127.0.0.1:{lab.dns_port}", "remove"]
    assert all(s["ok"] for s in result["steps"])
    assert "_certautopilot-probe.example.test" in result["steps"][0]["detail"]
    assert lab.tsig_secret not in json.dumps(result)
    # The probe is gone from BIND.
    from tests.integration.dns_servers import txt_at

    assert txt_at("127.0.0.1", lab.dns_port, "_certautopilot-probe.example.test") == set()

    # A server that does not serve the zone: that server's read step fails, by name.
    service.ok(
        "PATCH",
        f"/projects/{slug}/zones/{zone['id']}",
        json={
            "nameservers": [f"127.0.0.1:{lab.dns_port}", "127.0.0.2:9"],
            "propagation_timeout_seconds": 1,
        },
    )
    partial = service.ok("POST", f"/projects/{slug}/zones/{zone['id']}/test")
    by_step = {s["step"]: s for s in partial["steps"]}
    assert partial["ok"] is False
    assert by_step[f"read 127.0.0.1:{lab.dns_port}"]["ok"] is True
    assert by_step["read 127.0.0.2:9"]["ok"] is False
    assert "did not serve the probe value within 1s" in by_step["read 127.0.0.2:9"]["detail"]
    assert by_step["remove"]["ok"] is True

    manual = service.ok(
        "POST", f"/projects/{slug}/zones", 201, json={"name": "manual.test", "provider": "manual"}
    )
    told = service.ok("POST", f"/projects/{slug}/zones/{manual['id']}/test")
    assert told["ok"] is False and "manual zone" in told["steps"][0]["detail"]


def test_delete_refused_while_a_certificate_uses_the_zone(service: Service, lab: LabInfo) -> None:
    slug = _project(service)
    issuer = add_pebble_issuer(service, lab, slug)
    used = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab))
    spare = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab, "sub.example.test"))
    name = f"del-{uuid.uuid4().hex[:6]}.example.test"
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer["id"], "common_name": name},
    )
    refused = service.call("DELETE", f"/projects/{slug}/zones/{used['id']}")
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert cert["id"] in detail and name in detail
    assert service.ok("GET", f"/projects/{slug}/zones/{used['id']}")["name"] == "example.test"

    secret_rows = lambda s: s.scalar(  # noqa: E731
        sa.select(sa.func.count())
        .select_from(StoredSecret)
        .where(StoredSecret.owner_table == "dns_zones", StoredSecret.owner_id == spare["id"])
    )
    assert _db(service, secret_rows) == 1
    gone = service.call("DELETE", f"/projects/{slug}/zones/{spare['id']}")
    assert gone.status_code == 204, gone.text
    assert service.call("GET", f"/projects/{slug}/zones/{spare['id']}").status_code == 404
    assert _db(service, secret_rows) == 0
    types = _db(
        service,
        lambda s: [
            e.type for e in audit.events_for(s, subject_type="zone", subject_id=spare["id"])
        ],
    )
    assert types == ["zone.created", "zone.deleted"]
    service.wait_for(slug, cert["id"], ("issued", "failed"))


def test_zone_of_a_name_by_suffix_or_suggested_by_soa(service: Service, lab: LabInfo) -> None:
    slug = _project(service)
    zone = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab))
    sub = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab, "sub.example.test"))
    found = service.ok(
        "GET", f"/projects/{slug}/zones/suggest", params={"name": "www.a.example.test"}
    )
    assert (found["zone"], found["zone_id"]) == ("example.test", zone["id"])
    deeper = service.ok(
        "GET", f"/projects/{slug}/zones/suggest", params={"name": "*.x.sub.example.test"}
    )
    assert deeper["zone_id"] == sub["id"]  # the longest suffix wins
    bad = service.call("GET", f"/projects/{slug}/zones/suggest", params={"name": "bad..name"})
    assert list(_errors(bad)) == ["name"]

    # Not in a zone of the project: the SOA walk, through a resolver that asks the lab's BIND.
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = lab.dns_port
    resolver.lifetime = 5
    app = service.client.app
    app.dependency_overrides[get_dns_resolver] = lambda: resolver  # type: ignore[attr-defined]
    try:
        walked = service.ok(
            "GET", f"/projects/{slug}/zones/suggest", params={"name": "www.deep.manual.test"}
        )
    finally:
        app.dependency_overrides.pop(get_dns_resolver)  # type: ignore[attr-defined]
    assert walked["zone"] is None and walked["apex"] == "manual.test"
    assert "add zone manual.test" in walked["detail"]
    assert probe.suggest_apex("www.deep.manual.test", resolver=resolver) == "manual.test"
    assert probe.suggest_apex("x.y.sub.example.test", resolver=resolver) == "sub.example.test"
    apex, why = probe.apex_or_reason("www.not-served.invalid", resolver=resolver)
    assert apex is None and "no zone found for www.not-served.invalid" in why


def test_the_worker_uses_an_edited_zone_at_once(service: Service, lab: LabInfo) -> None:
    """The worker caches a zone's provider under a fingerprint of its settings: an edit
    through the API is used by the same running worker on the next order."""
    slug = _project(service)
    issuer = add_pebble_issuer(service, lab, slug)
    zone = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab))
    url = f"/projects/{slug}/zones/{zone['id']}"

    def order() -> dict[str, Any]:
        name = f"edit-{uuid.uuid4().hex[:6]}.example.test"
        cert = service.ok(
            "POST",
            f"/projects/{slug}/certificates",
            202,
            json={"issuer": issuer["id"], "common_name": name},
        )
        done: dict[str, Any] = service.wait_for(slug, cert["id"], ("issued", "failed"))
        return done

    assert order()["status"] == "issued"
    # A second server that never answers, and a short timeout: the order fails naming it.
    service.ok(
        "PATCH",
        url,
        json={
            "nameservers": [f"127.0.0.1:{lab.dns_port}", "127.0.0.2:9"],
            "propagation_timeout_seconds": 2,
        },
    )
    failed = order()
    assert failed["status"] == "failed" and "127.0.0.2:9" in failed["error"]["detail"], failed
    service.ok("PATCH", url, json={"nameservers": [f"127.0.0.1:{lab.dns_port}"]})
    assert order()["status"] == "issued"


def test_a_disabled_zone_gets_no_record_until_enabled(service: Service, lab: LabInfo) -> None:
    """Disabled: the zone and its certificates are kept, but a new request or a renewal of
    a name in it is refused up front (the other zone still works); Test still runs; enabled
    again, its certificate renews through BIND."""
    slug = _project(service)
    issuer = add_pebble_issuer(service, lab, slug)
    zone = service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab))
    service.ok("POST", f"/projects/{slug}/zones", 201, json=_body(lab, "sub.example.test"))
    url = f"/projects/{slug}/zones/{zone['id']}"
    kept = f"kept-{uuid.uuid4().hex[:6]}.example.test"
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer["id"], "common_name": kept},
    )
    first = service.wait_for(slug, cert["id"], ("issued", "failed"))
    assert first["status"] == "issued", first

    off = service.ok("PATCH", url, json={"enabled": False})
    assert off["enabled"] is False and off["settings"] == zone["settings"]
    listed = {z["name"]: z["enabled"] for z in service.ok("GET", f"/projects/{slug}/zones")}
    assert listed == {"example.test": False, "sub.example.test": True}

    other = f"o-{uuid.uuid4().hex[:6]}.sub.example.test"
    for body, field in (
        ({"common_name": f"new-{uuid.uuid4().hex[:6]}.example.test"}, "common_name"),
        ({"common_name": other, "sans": [f"s-{uuid.uuid4().hex[:6]}.example.test"]}, "sans"),
    ):
        request = {"issuer": issuer["id"], **body}
        errors = _errors(service.call("POST", f"/projects/{slug}/certificates", json=request))
        assert list(errors) == [field]
        assert "zone example.test is disabled" in errors[field]
        assert "Settings → DNS zones" in errors[field]
        checked = service.ok("POST", f"/projects/{slug}/certificates/preflight", json=request)
        codes = {(w["code"], w["field"]) for w in checked["warnings"]}
        assert ("dns.zone_disabled", field) in codes
    renew = service.call("POST", f"/projects/{slug}/certificates/{cert['id']}/renew")
    assert renew.status_code == 409, renew.text
    assert "zone example.test is disabled" in renew.json()["detail"]
    shown = service.ok("GET", f"/projects/{slug}/certificates/{cert['id']}")
    assert shown["status"] == "issued"
    # a name in the zone that stays enabled is issued meanwhile
    fine = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer["id"], "common_name": other},
    )
    assert service.wait_for(slug, fine["id"], ("issued", "failed"))["status"] == "issued"
    # Test still writes its probe: an admin checks the zone before enabling it again
    assert service.ok("POST", f"{url}/test")["ok"] is True

    assert service.ok("PATCH", url, json={"enabled": True})["enabled"] is True
    service.ok("POST", f"/projects/{slug}/certificates/{cert['id']}/renew", 202)
    renewed = service.wait_for(slug, cert["id"], ("issued", "failed"))
    assert renewed["status"] == "issued", renewed
    assert renewed["current"]["serial"] != first["current"]["serial"]
    changes = _db(
        service,
        lambda s: [
            (e.type, e.detail.get("enabled"))
            for e in audit.events_for(s, subject_type="zone", subject_id=zone["id"])
        ],
    )
    assert changes == [("zone.created", None), ("zone.updated", False), ("zone.updated", True)]
