"""``zones.reroute``: the routing each issuance finds again (renewals follow new CNAMEs)."""

from __future__ import annotations

import pytest

from certautopilot.certificates.zones import reroute, route_challenges
from certautopilot.dns.models import DnsZone
from certautopilot.errors import DNSError

OWN = "_acme-challenge.www.a.test"
TARGET = "_acme-challenge.www.a.test.b.test"


def _zone(name: str, provider: str = "rfc2136") -> DnsZone:
    return DnsZone(id=f"id-{name}", project_id="p", name=name, provider=provider, config={})


ZONES = [_zone("a.test"), _zone("b.test"), _zone("m.test", "manual")]
MANUAL = frozenset({"id-m.test"})


def _own(**extra: object) -> dict[str, object]:
    return {"zone_id": "id-a.test", "challenge_name": None, "manual": False, **extra}


def test_a_cname_added_after_issuance_is_followed() -> None:
    stored = {"www.a.test": _own(delegated_from=None, explicit=False, fallback=False)}
    routed = reroute(["www.a.test"], ZONES, stored, MANUAL, {OWN: TARGET}.get)
    assert routed["www.a.test"] == {
        "zone_id": "id-b.test",
        "challenge_name": TARGET,
        "manual": False,
        "delegated_from": OWN,
        "explicit": False,
        "fallback": False,
        "zone": "b.test",
    }
    # and a CNAME removed again: back to the name's own zone
    again = reroute(["www.a.test"], ZONES, routed, MANUAL, {}.get)
    assert (again["www.a.test"]["zone"], again["www.a.test"]["delegated_from"]) == ("a.test", None)


def test_an_explicit_override_wins_over_a_new_cname() -> None:
    stored = {"www.a.test": _own(zone_id="id-m.test", manual=True, explicit=True)}
    routed = reroute(["www.a.test"], ZONES, stored, MANUAL, {OWN: TARGET}.get)
    assert routed["www.a.test"]["zone_id"] == "id-m.test"
    assert routed["www.a.test"]["zone"] == "m.test"


def test_a_routing_stored_without_flags_keeps_an_override_to_another_zone() -> None:
    stored = {"www.a.test": {"zone_id": "id-b.test", "challenge_name": "x.b.test", "manual": False}}
    routed = reroute(["www.a.test"], ZONES, stored, MANUAL, {OWN: TARGET}.get)
    assert routed["www.a.test"]["challenge_name"] == "x.b.test"


def test_a_delegation_broken_since_the_request_fails_naming_it() -> None:
    stored = {"www.a.test": _own(delegated_from=None, explicit=False, fallback=False)}
    with pytest.raises(DNSError) as raised:
        reroute(["www.a.test"], ZONES, stored, MANUAL, {OWN: "x.elsewhere.invalid"}.get)
    assert f"{OWN} is a CNAME to x.elsewhere.invalid" in str(raised.value)


def test_a_broken_delegation_accepted_at_creation_falls_back_again() -> None:
    stored = {"www.a.test": _own(delegated_from=None, explicit=False, fallback=True)}
    routed = reroute(["www.a.test"], ZONES, stored, MANUAL, {OWN: "x.elsewhere.invalid"}.get)
    assert routed["www.a.test"]["zone"] == "a.test" and routed["www.a.test"]["fallback"] is True


def test_a_name_whose_delegation_was_its_only_way_fails() -> None:
    name, start = "www.c.test", "_acme-challenge.www.c.test"
    stored = {
        name: {
            "zone_id": "id-b.test",
            "challenge_name": f"{start}.b.test",
            "manual": False,
            "delegated_from": start,
        }
    }
    with pytest.raises(DNSError, match=f"{start} is a CNAME to gone.invalid"):
        reroute([name], ZONES, stored, MANUAL, {start: "gone.invalid"}.get)


def test_a_name_in_a_disabled_zone_fails_naming_the_zone() -> None:
    """Disabled since the request: nothing may be written there, whichever way the name
    was routed (its own zone, a CNAME followed, an explicit override)."""
    off = _zone("b.test")
    off.enabled = False
    zones = [_zone("a.test"), off]
    stored = {"www.a.test": _own(delegated_from=None, explicit=False, fallback=False)}
    with pytest.raises(DNSError, match=r"zone b\.test is disabled") as followed:
        reroute(["www.a.test"], zones, stored, MANUAL, {OWN: TARGET}.get)
    assert "www.a.test" in str(followed.value)
    explicit = {"www.a.test": _own(zone_id="id-b.test", challenge_name="x.b.test", explicit=True)}
    with pytest.raises(DNSError, match=r"zone b\.test is disabled"):
        reroute(["www.a.test"], zones, explicit, MANUAL, {}.get)
    # the other zone is still written in
    assert reroute(["www.a.test"], zones, stored, MANUAL, {}.get)["www.a.test"]["zone"] == "a.test"


def test_creation_refuses_a_name_in_a_disabled_zone_on_its_field() -> None:
    off = _zone("b.test")
    off.enabled = False
    routing = route_challenges(["www.a.test", "www.b.test"], [_zone("a.test"), off], {})
    assert [t.name for t in routing.targets] == ["www.a.test"]
    assert routing.unroutable == []
    ((field, message),) = routing.disabled
    assert field == "sans" and message.startswith("www.b.test: zone b.test is disabled")
    assert routing.refused == routing.disabled
