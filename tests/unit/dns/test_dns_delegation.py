"""CNAME delegation of DNS-01 challenges: the resolver with a dict for DNS, and the routing
of each name to the zone the TXT record is written in."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest

from certautopilot.certificates.schemas import ChallengeOverride
from certautopilot.certificates.zones import (
    DELEGATION_BROKEN,
    resolve_zones,
    route_challenges,
)
from certautopilot.dns import delegation
from certautopilot.dns.models import DnsZone
from certautopilot.errors import InvalidInput


def lookup_of(records: dict[str, str]) -> delegation.CnameLookup:
    """A CNAME lookup over a dict; it records every name asked."""
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return records.get(name)

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


ZONES = ["example.test", "sub.example.test", "customer.test"]


def test_no_cname_keeps_the_record_in_the_name_zone() -> None:
    found = delegation.resolve("www.example.test", ZONES, lookup_of({}))
    assert found.record_name == "_acme-challenge.www.example.test"
    assert found.zone == "example.test" and found.delegated_from is None
    assert not found.broken


def test_one_hop_writes_at_the_target_in_its_zone() -> None:
    records = {
        "_acme-challenge.www.customer.test": "_acme-challenge.www.customer.test.sub.example.test."
    }
    found = delegation.resolve("www.customer.test", ZONES, lookup_of(records))
    assert found.record_name == "_acme-challenge.www.customer.test.sub.example.test"
    assert found.zone == "sub.example.test"  # the longest zone holding the target
    assert found.delegated_from == "_acme-challenge.www.customer.test"


def test_chain_is_followed_to_its_end() -> None:
    records = {
        "_acme-challenge.a.customer.test": "hop1.elsewhere.org",
        "hop1.elsewhere.org": "hop2.elsewhere.org.",
        "hop2.elsewhere.org": "final.example.test",
    }
    found = delegation.resolve("a.customer.test", ZONES, lookup_of(records))
    assert found.chain == (
        "_acme-challenge.a.customer.test",
        "hop1.elsewhere.org",
        "hop2.elsewhere.org",
        "final.example.test",
    )
    assert found.record_name == "final.example.test" and found.zone == "example.test"


def test_loop_is_an_error_naming_the_chain() -> None:
    records = {
        "_acme-challenge.a.customer.test": "x.example.test",
        "x.example.test": "_acme-challenge.a.customer.test",
    }
    with pytest.raises(
        delegation.CnameLoop,
        match=re.escape("loops: _acme-challenge.a.customer.test -> x.example.test -> _acme"),
    ):
        delegation.resolve("a.customer.test", ZONES, lookup_of(records))


def test_too_deep_is_an_error() -> None:
    records = {"_acme-challenge.a.customer.test": "h1.example.test"}
    records |= {f"h{i}.example.test": f"h{i + 1}.example.test" for i in range(1, 20)}
    with pytest.raises(delegation.CnameLoop, match="longer than 8 hops"):
        delegation.resolve("a.customer.test", ZONES, lookup_of(records))
    # exactly max_depth hops is fine
    short = {"_acme-challenge.a.customer.test": "h1.example.test"}
    short |= {f"h{i}.example.test": f"h{i + 1}.example.test" for i in range(1, 8)}
    assert (
        delegation.resolve("a.customer.test", ZONES, lookup_of(short)).record_name
        == "h8.example.test"
    )


def test_target_outside_every_zone_is_broken() -> None:
    records = {"_acme-challenge.www.customer.test": "_acme-challenge.acme-dns.example.org"}
    found = delegation.resolve("www.customer.test", ZONES, lookup_of(records))
    assert found.broken and found.zone is None


def test_suggestion_is_the_shortest_writable_zone() -> None:
    zones = {"customer.test": False, "sub.example.test": True, "example.test": True}
    assert delegation.suggest_target("*.shop.other.test", zones) == {
        "cname": "_acme-challenge.shop.other.test",
        "target": "_acme-challenge.shop.other.test.example.test",
    }
    assert delegation.suggest_target("x.other.test", {"customer.test": False}) is None


# -- routing (certificates.zones) ----------------------------------------------------------


def zone(name: str, provider: str = "rfc2136") -> DnsZone:
    return DnsZone(id=f"id-{name}", project_id="p", name=name, provider=provider, config={})


PROJECT = [zone("example.test"), zone("customer.test", "manual"), zone("powerdns.test", "powerdns")]


def test_manual_zone_delegated_to_a_zone_with_credentials() -> None:
    records = {
        "_acme-challenge.www.customer.test": "_acme-challenge.www.customer.test.example.test"
    }
    routing = route_challenges(["www.customer.test"], PROJECT, {}, lookup_of(records))
    [target] = routing.targets
    assert target.zone_id == "id-example.test"
    assert target.challenge_name == "_acme-challenge.www.customer.test.example.test"
    assert target.delegated_from == "_acme-challenge.www.customer.test"
    assert [r.as_dict() for r in routing.routes] == [
        {
            "name": "www.customer.test",
            "record_name": "_acme-challenge.www.customer.test.example.test",
            "zone": "example.test",
            "delegated_from": "_acme-challenge.www.customer.test",
            "delegate": None,
        }
    ]
    assert not routing.notices and not routing.unroutable


def test_wildcard_and_apex_share_one_name_and_one_lookup() -> None:
    records = {"_acme-challenge.customer.test": "_acme-challenge.customer.test.powerdns.test"}
    lookup = lookup_of(records)
    routing = route_challenges(["customer.test", "*.customer.test"], PROJECT, {}, lookup)
    assert {t.challenge_name for t in routing.targets} == {
        "_acme-challenge.customer.test.powerdns.test"
    }
    assert {t.zone_id for t in routing.targets} == {"id-powerdns.test"}
    assert lookup.asked.count("_acme-challenge.customer.test") == 1  # type: ignore[attr-defined]


def test_name_without_zone_but_delegated_is_issuable() -> None:
    records = {
        "_acme-challenge.shop.nowhere.test": "_acme-challenge.shop.nowhere.test.example.test"
    }
    [target] = resolve_zones(["shop.nowhere.test"], PROJECT, {}, lookup_of(records))
    assert target.zone_name == "example.test"


def test_name_without_zone_or_delegation_says_what_cname_to_create() -> None:
    routing = route_challenges(["a.example.test", "shop.nowhere.test"], PROJECT, {}, lookup_of({}))
    assert routing.unroutable == [
        (
            "sans",
            "shop.nowhere.test is not under any DNS zone of this project; add the zone or a "
            "challenge_overrides entry for it, or delegate instead: create the CNAME "
            "_acme-challenge.shop.nowhere.test -> _acme-challenge.shop.nowhere.test.example.test",
        )
    ]
    assert routing.routes[1].delegate == {
        "cname": "_acme-challenge.shop.nowhere.test",
        "target": "_acme-challenge.shop.nowhere.test.example.test",
    }
    with pytest.raises(InvalidInput) as err:
        resolve_zones(["shop.nowhere.test"], PROJECT, {}, lookup_of({}))
    assert err.value.errors[0][0] == "common_name"


def test_broken_delegation_is_a_warning_for_a_name_with_a_zone() -> None:
    records = {"_acme-challenge.www.customer.test": "_acme-challenge.elsewhere.org"}
    routing = route_challenges(["www.customer.test"], PROJECT, {}, lookup_of(records))
    [notice] = routing.notices
    assert notice.code == DELEGATION_BROKEN and notice.field == "common_name"
    assert "_acme-challenge.elsewhere.org, which is in no DNS zone" in notice.message
    assert "point it at _acme-challenge.www.customer.test.example.test" in notice.message
    assert routing.routes[0].zone is None and routing.routes[0].delegate is not None
    assert routing.targets[0].zone_id == "id-customer.test"  # only if an admin overrides


def test_loop_is_invalid_input_naming_the_field() -> None:
    records = {"_acme-challenge.b.example.test": "_acme-challenge.b.example.test"}
    with pytest.raises(InvalidInput) as err:
        route_challenges(["a.example.test", "b.example.test"], PROJECT, {}, lookup_of(records))
    assert err.value.errors == [
        (
            "sans",
            "the CNAME chain of _acme-challenge.b.example.test loops: "
            "_acme-challenge.b.example.test -> _acme-challenge.b.example.test",
        )
    ]


def test_explicit_override_wins_and_is_not_looked_up() -> None:
    lookup = lookup_of({"_acme-challenge.www.customer.test": "x.elsewhere.org"})
    overrides: dict[str, Any] = {
        "www.customer.test": ChallengeOverride(zone="example.test", challenge_name="x.example.test")
    }
    [target] = resolve_zones(["www.customer.test"], PROJECT, overrides, lookup)
    assert target.zone_id == "id-example.test" and target.challenge_name == "x.example.test"
    assert lookup.asked == []  # type: ignore[attr-defined]


def test_real_lookup_reads_an_unreachable_server_as_no_cname() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        lookup = delegation.dns_lookup({"example.test": [("127.0.0.1", port)]}, timeout=0.1)
        assert lookup("_acme-challenge.www.example.test") is None
        assert lookup("_acme-challenge.api.example.test") is None  # not asked again


class PaperProvider:
    """A third-party provider a person answers by hand (its ``manual`` flag, not its name)."""

    name = "paper"
    title = "Records on paper"
    manual = True
    config_model = ChallengeOverride  # any model: never built here


def test_delegation_is_never_suggested_to_a_manual_zone_of_a_third_party_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import EntryPoint, entry_points

    from certautopilot import plugins

    def source(group: str) -> list[EntryPoint]:
        found = list(entry_points(group=group))
        if group == plugins.Family.DNS_PROVIDERS.value:
            found.append(EntryPoint(name="paper", value=f"{__name__}:PaperProvider", group=group))
        return found

    monkeypatch.setattr(plugins, "_registry", plugins.Registry(source))
    project = [zone("ab.test", "paper"), zone("example.test")]
    routing = route_challenges(["shop.nowhere.test"], project, {}, lookup_of({}))
    assert routing.routes[0].delegate == {
        "cname": "_acme-challenge.shop.nowhere.test",
        "target": "_acme-challenge.shop.nowhere.test.example.test",
    }
