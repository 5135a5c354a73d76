"""CAA (RFC 8659, RFC 8657) as the service reads it: the issue-value grammar, climbing to
the closest parent with records, issuewild for wildcards, accounturi and validationmethods,
the critical flag, and the records suggested for a zone."""

from __future__ import annotations

import pytest

from certautopilot.dns import caa
from certautopilot.dns.caa import CaaRecord, LookupFailed

LE = "letsencrypt.org"
ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123"


def _asker(data: dict[str, list[CaaRecord]]) -> tuple[caa.Asker, list[str]]:
    asked: list[str] = []

    def ask(fqdn: str) -> tuple[list[CaaRecord], str]:
        asked.append(fqdn)
        return data.get(fqdn, []), "test"

    return ask, asked


def _verdict(records: dict[str, list[CaaRecord]], name: str, **kw: str | None) -> caa.Verdict:
    ask, _ = _asker(records)
    found = caa.climb(name, ask)
    return caa.evaluate(
        found, identity=kw.get("identity", LE), account_uri=kw.get("account", ACCOUNT)
    )


def test_issue_value_grammar() -> None:
    assert caa.parse_issue_value("letsencrypt.org") == caa.IssueValue(LE, {})
    value = caa.parse_issue_value(
        " LetsEncrypt.org. ; accounturi=https://x/1 ;validationmethods=dns-01"
    )
    assert value.issuer == LE
    assert value.params == {"accounturi": "https://x/1", "validationmethods": "dns-01"}
    assert caa.parse_issue_value(";").issuer is None  # nobody
    assert caa.parse_issue_value("bad_domain!").issuer is None
    assert caa.parse_issue_value("ca.example; novalue").issuer is None


def test_climbing_stops_at_the_closest_parent_with_records_and_never_asks_the_tld() -> None:
    records = {"example.com": [CaaRecord(0, "issue", "other.ca")]}
    ask, asked = _asker(records)
    found = caa.climb("*.www.shop.example.com", ask)
    assert asked == ["www.shop.example.com", "shop.example.com", "example.com"]
    assert found.found_at == "example.com"
    ask, asked = _asker({})
    assert caa.climb("a.example.com", ask).found_at is None
    assert asked == ["a.example.com", "example.com"]  # not "com"


def test_no_records_or_no_issue_property_allow_any_ca() -> None:
    assert _verdict({}, "a.example.com").allowed
    iodef = {"example.com": [CaaRecord(0, "iodef", "mailto:sec@example.com")]}
    assert _verdict(iodef, "a.example.com").allowed


def test_issue_names_the_ca() -> None:
    records = {"example.com": [CaaRecord(0, "issue", "pki.goog"), CaaRecord(0, "issue", LE)]}
    assert _verdict(records, "a.example.com").allowed
    other = {"example.com": [CaaRecord(0, "issue", "pki.goog")]}
    refused = _verdict(other, "a.example.com")
    assert not refused.allowed and "allows only pki.goog" in refused.reason
    assert not _verdict({"example.com": [CaaRecord(0, "issue", ";")]}, "a.example.com").allowed


def test_the_closest_records_win_over_the_parents() -> None:
    records = {
        "example.com": [CaaRecord(0, "issue", "pki.goog")],
        "shop.example.com": [CaaRecord(0, "issue", LE)],
    }
    assert _verdict(records, "www.shop.example.com").allowed
    assert not _verdict(records, "www.example.com").allowed


def test_wildcards_follow_issuewild_when_there_is_one() -> None:
    records = {"example.com": [CaaRecord(0, "issue", LE), CaaRecord(0, "issuewild", ";")]}
    assert _verdict(records, "a.example.com").allowed
    refused = _verdict(records, "*.example.com")
    assert not refused.allowed and "(issuewild)" in refused.reason
    only_issue = {"example.com": [CaaRecord(0, "issue", LE)]}
    assert _verdict(only_issue, "*.example.com").allowed


def test_accounturi_and_validationmethods_rfc8657() -> None:
    mine = {"example.com": [CaaRecord(0, "issue", f"{LE}; accounturi={ACCOUNT}")]}
    assert _verdict(mine, "a.example.com").allowed
    theirs = {"example.com": [CaaRecord(0, "issue", f"{LE}; accounturi=https://x/acct/9")]}
    refused = _verdict(theirs, "a.example.com")
    assert not refused.allowed and "another ACME account" in refused.reason
    http = {"example.com": [CaaRecord(0, "issue", f"{LE}; validationmethods=http-01,tls-alpn-01")]}
    refused = _verdict(http, "a.example.com")
    assert not refused.allowed and "does not allow dns-01" in refused.reason
    both = {"example.com": [CaaRecord(0, "issue", f"{LE}; validationmethods=http-01,dns-01")]}
    assert _verdict(both, "a.example.com").allowed
    spaced = {"example.com": [CaaRecord(0, "issue", f"{LE}; validationmethods=http-01, dns-01")]}
    assert not _verdict(spaced, "a.example.com").allowed  # RFC 8659 values have no spaces


def test_an_unknown_critical_property_forbids_and_an_unknown_identity_is_said() -> None:
    critical = {"example.com": [CaaRecord(0, "issue", LE), CaaRecord(128, "tbs", "x")]}
    refused = _verdict(critical, "a.example.com")
    assert not refused.allowed and "critical" in refused.reason
    unknown = _verdict({"example.com": [CaaRecord(0, "issue", LE)]}, "a.example.com", identity=None)
    assert not unknown.allowed and "no CAA identity" in unknown.reason


def test_a_failed_lookup_is_reported_not_judged() -> None:
    def ask(fqdn: str) -> tuple[list[CaaRecord], str]:
        raise LookupFailed("timeout")

    found = caa.climb("a.example.com", ask)
    assert found.error == "a.example.com: timeout" and found.found_at is None


@pytest.mark.parametrize("account", [ACCOUNT, None])
def test_suggested_records_allow_the_issuer_for_names_and_wildcards(account: str | None) -> None:
    lines = caa.suggested_records("example.com", [(LE, account)])
    assert len(lines) == 2 and lines[0].startswith('example.com. CAA 0 issue "letsencrypt.org;')
    assert lines[1].startswith("example.com. CAA 0 issuewild ")
    assert ("accounturi=" in lines[0]) == (account is not None)
    value = lines[0].split('"')[1]
    records = {"example.com": [CaaRecord(0, "issue", value), CaaRecord(0, "issuewild", value)]}
    assert _verdict(records, "*.a.example.com", account=account or ACCOUNT).allowed
