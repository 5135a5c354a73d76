"""ACME profiles against a real CA that offers them: acme2certifier 0.46.3 with
``[Order] profiles`` (Pebble 2.4 has none), signing 6-day certificates.

The issuer's profiles are read from the directory's ``meta.profiles``; a profile the CA does
not offer is a 422 on ``acme_profile`` before anything is ordered; policy may restrict the
profiles; the chosen profile goes out in newOrder (acme2certifier stores it with the order,
and the timeline records it), and the certificate shows it with its real lifetime:
short-lived, so it is due for renewal at half of it (or in the CA's ARI window)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from certautopilot_lab.a2c import A2CInfo, A2CSettings
from certautopilot_lab.a2c_files import A2CPaths
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, add_a2c_issuer, create_project, running_a2c, sign_in_client

PROFILES = (("tlsserver", "45-day certificates"), ("shortlived", "6-day certificates"))


@pytest.fixture(scope="module")
def profiled_a2c(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[A2CInfo]:
    settings = A2CSettings(cert_validity_days=6, profiles=PROFILES)
    with running_a2c(lab, tmp_path_factory.mktemp("a2c-profiles"), settings) as info:
        yield info


def _orders_profiles(info: A2CInfo) -> list[str | None]:
    """What acme2certifier stored as each order's profile (its own database)."""
    with sqlite3.connect(A2CPaths(info.base_dir).db) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(orders)")]
        assert "profile" in columns, columns
        return [row[0] for row in db.execute("SELECT profile FROM orders ORDER BY id")]


def test_a_profile_offered_by_the_ca_is_chosen_sent_and_shown(
    service: Service, lab: LabInfo, profiled_a2c: A2CInfo
) -> None:
    made = create_project(service, lab, manual_zone=False)
    issuer = add_a2c_issuer(service, profiled_a2c, made.slug)["id"]
    base = f"/projects/{made.slug}"

    offered = service.ok("GET", f"{base}/issuers/{issuer}/profiles")
    assert offered["profiles"] == [
        {"name": "shortlived", "description": "6-day certificates"},
        {"name": "tlsserver", "description": "45-day certificates"},
    ]
    pebble = service.ok("GET", f"{base}/issuers/{made.issuer_id}/profiles")
    assert pebble["profiles"] == []  # Pebble 2.4 advertises none

    unknown = service.call(
        "POST",
        f"{base}/certificates",
        json={"issuer": issuer, "common_name": "p0.example.test", "acme_profile": "classic"},
    )
    assert unknown.status_code == 422, unknown.text
    assert [e["field"] for e in unknown.json()["errors"]] == ["acme_profile"]
    assert "shortlived, tlsserver" in unknown.text

    service.ok("PUT", f"{base}/policy", json={"allowed_acme_profiles": ["tlsserver"]})
    barred = service.ok(
        "POST",
        f"{base}/certificates/preflight",
        json={"issuer": issuer, "common_name": "p1.example.test", "acme_profile": "shortlived"},
    )
    assert [(w["code"], w["field"]) for w in barred["warnings"]] == [
        ("acme_profile_not_allowed", "acme_profile")
    ]
    service.ok("PUT", f"{base}/policy", json={"allowed_acme_profiles": ["tlsserver", "shortlived"]})

    before = len(_orders_profiles(profiled_a2c))
    cid = service.ok(
        "POST",
        f"{base}/certificates",
        202,
        json={"issuer": issuer, "common_name": "p2.example.test", "acme_profile": "shortlived"},
    )["id"]
    body = service.wait_for(made.slug, cid, ("issued", "failed"), timeout=90)
    assert body["status"] == "issued", body["error"]
    assert body["acme_profile"] == "shortlived"
    assert _orders_profiles(profiled_a2c)[before:] == ["shortlived"]  # sent in newOrder
    current = body["current"]
    assert current["lifetime_seconds"] == pytest.approx(6 * 86400, abs=120)
    assert current["short_lived"] is True

    events = service.timeline(made.slug, cid)["events"]
    created = next(e for e in events if e["type"] == "acme.order.created")
    assert created["detail"]["profile"] == "shortlived"
    # due at half the lifetime (within the 2% jitter), unless the CA's ARI window moved it
    not_before = datetime.fromisoformat(current["not_before"])
    not_after = datetime.fromisoformat(current["not_after"])
    lifetime = not_after - not_before
    next_at = datetime.fromisoformat(
        service.ok("GET", f"{base}/certificates/{cid}")["renewal"]["next_at"]
    )
    scheduled = [
        e for e in service.timeline(made.slug, cid)["events"] if e["type"] == "renewal.scheduled"
    ]
    if scheduled:  # ARI: a point inside the CA's window
        assert not_before < next_at <= not_after
    else:
        assert lifetime / 2 - lifetime * 0.02 - timedelta(seconds=1) <= not_after - next_at
        assert not_after - next_at <= lifetime / 2 + lifetime * 0.02 + timedelta(seconds=1)

    # the web pages: the form lists the CA's profiles; the detail page shows the chosen one
    # and the real lifetime
    client = service.client
    try:
        sign_in_client(service)
        form = client.get(f"/p/{made.slug}/certificates/new")
        assert form.status_code == 200, form.text
        assert 'data-testid="offered-profiles"' in form.text
        assert '<b class="mono">shortlived</b> (acme2certifier): 6-day certificates' in form.text
        detail = client.get(f"/p/{made.slug}/certificates/{cid}")
        assert detail.status_code == 200, detail.text
        assert 'data-testid="acme-profile"><span class="mono">shortlived</span>' in detail.text
        assert 'data-testid="lifetime">6 days' in detail.text
        assert 'data-testid="short-lived"' in detail.text
    finally:
        client.cookies.clear()
