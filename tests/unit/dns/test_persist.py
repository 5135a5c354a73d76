"""dns-persist-01 records, checked against every example of draft-ietf-acme-dns-persist-02."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certautopilot.dns.persist import (
    AccountBinding,
    MalformedRecord,
    PersistState,
    build_record,
    challenge_issuer_domains,
    covers,
    directory_issuer_domains,
    evaluate,
    hashed_account_uri,
    normalize_domain,
    parse_record,
    record_name,
    zone_file_line,
)

# The draft's §10.2 inputs.
THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
ACCOUNT_URL = "https://ca.example/acct/123"
PREFIX = "https://ca.example/account-hash/"
HASHED = PREFIX + "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw"
HASHED_ANY = PREFIX + "sha-256/NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug"
ACCOUNT = AccountBinding(ACCOUNT_URL, key_thumbprint=THUMBPRINT, hash_prefix=PREFIX)
ISSUERS = ("authority.example", "ca.example.net")
NOW = datetime(2024, 7, 1, tzinfo=UTC)

# Figures 2, 5, 7 (§4.1, §10.1-§10.3), 8 (§10.4), 9 (§10.5), 10 (§10.6), strings joined.
BASIC = f"authority.example; accounturi={HASHED}"
WILDCARD = f"{BASIC}; policy=wildcard"
UNTIL = f"{BASIC}; persistUntil=1721952000"
WILDCARD_UNTIL = f"{BASIC}; policy=wildcard; persistUntil=1721952000"
JULY_26 = datetime(2024, 7, 26, tzinfo=UTC)


def test_hashed_uri_matches_the_test_vector_of_section_10_2() -> None:
    assert hashed_account_uri(PREFIX, "example.com", THUMBPRINT, ACCOUNT_URL) == HASHED
    assert hashed_account_uri(PREFIX, "*", THUMBPRINT, ACCOUNT_URL) == HASHED_ANY
    assert ACCOUNT.accepted_uris("example.com") == {HASHED, HASHED_ANY}


def test_record_name_of_section_4() -> None:
    assert record_name("example.com") == "_validation-persist.example.com"
    assert record_name("*.Example.COM.") == "_validation-persist.example.com"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, BASIC),
        ({"wildcard": True}, WILDCARD),
        ({"persist_until": 1721952000}, UNTIL),
        ({"persist_until": JULY_26}, UNTIL),
        ({"wildcard": True, "persist_until": JULY_26}, WILDCARD_UNTIL),
    ],
)
def test_build_gives_the_drafts_records(kwargs: dict[str, object], expected: str) -> None:
    spec = build_record(
        "example.com",
        issuer_domain="authority.example",
        account=ACCOUNT,
        **kwargs,  # type: ignore[arg-type]
    )
    assert spec.record_name == "_validation-persist.example.com"
    assert spec.value == expected


def test_a_wildcard_name_gets_the_base_record_with_policy_wildcard() -> None:
    spec = build_record("*.example.com", issuer_domain="authority.example", account=ACCOUNT)
    assert (spec.record_name, spec.value) == ("_validation-persist.example.com", WILDCARD)


def test_any_domain_opt_out_publishes_the_star_hash() -> None:
    spec = build_record(
        "example.com", issuer_domain="authority.example", account=ACCOUNT, any_domain=True
    )
    assert spec.value == f"authority.example; accounturi={HASHED_ANY}"


def test_without_account_hash_prefix_the_draft_01_plain_url_is_used() -> None:
    plain = AccountBinding(ACCOUNT_URL)
    spec = build_record("example.com", issuer_domain="authority.example", account=plain)
    assert spec.value == f"authority.example; accounturi={ACCOUNT_URL}"
    assert plain.accepted_uris("example.com") == {ACCOUNT_URL}


@pytest.mark.parametrize(
    ("text", "wildcard", "until"),
    [
        (BASIC, False, None),
        (WILDCARD, True, None),
        (UNTIL, False, 1721952000),
        (WILDCARD_UNTIL, True, 1721952000),
    ],
)
def test_parse_the_drafts_records(text: str, wildcard: bool, until: int | None) -> None:
    record = parse_record(text)
    assert record.issuer_domain == "authority.example"
    assert record.account_uri == HASHED
    assert (record.wildcard, record.persist_until) == (wildcard, until)
    assert record.to_text() == text


def test_parse_is_tolerant_of_case_whitespace_and_unknown_parameters() -> None:
    record = parse_record(
        f"  Authority.Example. ;accounturi = {HASHED} ;POLICY=WildCard;  "
        "PersistUntil=1721952000; future-tag=x;"
    )
    assert record.issuer_domain == "authority.example"
    assert record.account_uri == HASHED
    assert record.wildcard is True
    assert record.persist_until == 1721952000
    assert record.extras == (("future-tag", "x"),)


def test_an_unknown_policy_value_is_no_policy() -> None:
    record = parse_record(f"{BASIC}; policy=subdomains")
    assert record.wildcard is False
    assert record.policy == "subdomains"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("authority.example", "no accounturi"),
        ("authority.example; policy=wildcard", "no accounturi"),
        (f"; accounturi={HASHED}", "no issuer"),
        (f"{BASIC}; persistUntil=2024-07-26", "base-10"),
        (f"{BASIC}; persistUntil=-5", "base-10"),
        (f"{BASIC}; accounturi={HASHED}", "twice"),
        (f"{BASIC}; policy", "tag=value"),
        (f"{BASIC}; note=two words", "tag=value"),
    ],
)
def test_malformed_records_say_why(text: str, why: str) -> None:
    with pytest.raises(MalformedRecord, match=why):
        parse_record(text)


def _eval(records: list[str], name: str = "example.com", **kw: object) -> PersistState:
    status = evaluate(
        records,
        name=name,
        issuer_domains=ISSUERS,
        account=ACCOUNT,
        now=kw.pop("now", NOW),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return status.state


def test_the_basic_record_is_ok_for_the_fqdn_only() -> None:
    assert _eval([BASIC]) is PersistState.OK
    assert _eval([BASIC], name="*.example.com") is PersistState.NO_WILDCARD_POLICY
    assert _eval([BASIC], wildcard_needed=True) is PersistState.NO_WILDCARD_POLICY
    assert _eval([WILDCARD], name="*.example.com") is PersistState.OK


def test_persist_until_warns_then_expires() -> None:
    assert _eval([UNTIL], now=JULY_26 - timedelta(days=31)) is PersistState.OK
    assert _eval([UNTIL], now=NOW) is PersistState.EXPIRES_SOON
    assert _eval([UNTIL], now=NOW, warn_days=10) is PersistState.OK
    assert _eval([UNTIL], now=JULY_26) is PersistState.EXPIRES_SOON  # "after T" only
    assert _eval([UNTIL], now=JULY_26 + timedelta(seconds=1)) is PersistState.EXPIRED
    assert _eval([WILDCARD_UNTIL], name="*.example.com", now=NOW) is PersistState.EXPIRES_SOON
    status = evaluate([UNTIL], name="example.com", issuer_domains=ISSUERS, account=ACCOUNT, now=NOW)
    assert status.usable and status.persist_until == JULY_26
    assert "2024-07-26T00:00:00+00:00" in status.detail


def test_missing_wrong_issuer_wrong_account_and_malformed() -> None:
    assert _eval([]) is PersistState.MISSING
    other_ca = BASIC.replace("authority.example", "ca.other")
    status = evaluate(
        [other_ca], name="example.com", issuer_domains=ISSUERS, account=ACCOUNT, now=NOW
    )
    assert status.state is PersistState.WRONG_ISSUER
    assert "ca.other" in status.detail and "authority.example" in status.detail
    other_account = AccountBinding("https://ca.example/acct/999", THUMBPRINT, PREFIX)
    status = evaluate(
        [BASIC], name="example.com", issuer_domains=ISSUERS, account=other_account, now=NOW
    )
    assert status.state is PersistState.WRONG_ACCOUNT
    assert not status.usable
    # A hash computed for another domain does not move (§7.2.3).
    assert _eval([BASIC], name="www.example.com") is PersistState.WRONG_ACCOUNT
    assert _eval(["v=spf1 -all"]) is PersistState.MALFORMED
    # The plain -01 URL is not accepted by a CA that hashes.
    assert _eval([f"authority.example; accounturi={ACCOUNT_URL}"]) is PersistState.WRONG_ACCOUNT


def test_the_star_form_validates_any_domain() -> None:
    record = f"authority.example; accounturi={HASHED_ANY}"
    assert _eval([record], name="example.com") is PersistState.OK
    assert _eval([record], name="other.example") is PersistState.OK


def test_two_cas_each_see_only_their_own_record_section_4_3_4() -> None:
    ca1 = (
        "ca1.example; accounturi=https://ca1.example/account-hash/"
        "sha-256/wjZNvLpIgf7zrr9KQo7zCLaG2Ea67KS4o4cAwSepsls; policy=wildcard"
    )
    ca2 = (
        "ca2.example; accounturi=https://ca2.example/account-hash/"
        "sha-256/Mpngr2LZCN9gPArggXqEu4pKtYZvLL5IxMStzyWrrXc; persistUntil=1767225600"
    )
    # The draft does not give the inputs of these hashes: expect the published value itself.
    acct1 = AccountBinding(parse_record(ca1).account_uri)
    acct2 = AccountBinding(parse_record(ca2).account_uri)
    now = datetime(2025, 6, 1, tzinfo=UTC)
    s1 = evaluate(
        [ca1, ca2], name="*.example.org", issuer_domains=["ca1.example"], account=acct1, now=now
    )
    assert s1.state is PersistState.OK and s1.record and s1.record.wildcard
    s2 = evaluate(
        [ca1, ca2], name="example.org", issuer_domains=["ca2.example"], account=acct2, now=now
    )
    assert s2.state is PersistState.OK
    assert s2.persist_until == datetime(2026, 1, 1, tzinfo=UTC)
    # ca2's record carries no policy=wildcard, so it cannot cover the wildcard.
    s3 = evaluate(
        [ca1, ca2], name="*.example.org", issuer_domains=["ca2.example"], account=acct2, now=now
    )
    assert s3.state is PersistState.NO_WILDCARD_POLICY


def test_the_best_of_several_own_records_wins() -> None:
    stale = BASIC.replace(HASHED, PREFIX + "sha-256/old")
    assert _eval([stale, WILDCARD], name="*.example.com") is PersistState.OK
    assert _eval([stale, BASIC], name="*.example.com") is PersistState.NO_WILDCARD_POLICY


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "www.example.com",
        "app.example.com",
        "server.dept.example.com",
        "*.example.com",
        "*.dept.example.com",
    ],
)
def test_policy_wildcard_scope_section_6_3_permitted(name: str) -> None:
    assert covers("_validation-persist.example.com", name, wildcard_policy=True)


@pytest.mark.parametrize("name", ["otherexample.com", "example.net"])
def test_policy_wildcard_scope_section_6_3_not_permitted(name: str) -> None:
    assert not covers("example.com", name, wildcard_policy=True)


def test_scope_without_policy_is_the_fqdn_only_section_5_1() -> None:
    assert covers("example.com", "example.com", wildcard_policy=False)
    assert not covers("example.com", "www.example.com", wildcard_policy=False)
    assert not covers("example.com", "*.example.com", wildcard_policy=False)
    assert covers("dept.example.com", "*.server.dept.example.com", wildcard_policy=True)


def test_normalization_examples_of_section_9_2() -> None:
    assert normalize_domain("EXAMPLE.com.") == "example.com"
    # The draft prints "üÑICODE-example.com." for this output, but xn--nicode-example-9jb
    # decodes to "énicode-example.com"; check the algorithm with the input that matches it.
    assert normalize_domain("ÉNICODE-example.com.") == "xn--nicode-example-9jb.com"


def test_challenge_object_of_section_3_1() -> None:
    challenge = {
        "type": "dns-persist-01",
        "url": "https://ca.example/acme/authz/1234/0",
        "status": "pending",
        "issuerDomainNames": ["authority.example", "ca.example.net"],
    }
    assert challenge_issuer_domains(challenge) == ISSUERS
    assert challenge_issuer_domains(challenge, ["authority.example"]) == ISSUERS
    old = {"type": "dns-persist-01", "issuer-domain-names": ["authority.example"]}
    assert challenge_issuer_domains(old) == ("authority.example",)
    with pytest.raises(MalformedRecord, match="directory"):
        challenge_issuer_domains(challenge, ["other.example"])
    for bad in ([], [f"ca{i}.example" for i in range(11)], None, ["bad..name"]):
        with pytest.raises(MalformedRecord):
            challenge_issuer_domains({"issuerDomainNames": bad})


def test_directory_metadata_of_section_10_3() -> None:
    meta = {"accountHashPrefix": PREFIX, "issuerDomainNames": list(ISSUERS)}
    assert directory_issuer_domains(meta) == (ISSUERS, PREFIX)
    assert directory_issuer_domains({"caaIdentities": ["pebble.letsencrypt.org"]}) == ((), None)
    assert directory_issuer_domains({"issuerDomainNames": []}) == ((), None)


def test_zone_file_line_splits_long_rdata_section_9_1() -> None:
    spec = build_record("example.com", issuer_domain="authority.example", account=ACCOUNT)
    assert zone_file_line(spec) == f'_validation-persist.example.com. 3600 IN TXT "{BASIC}"'
    long_account = AccountBinding("https://ca.example/acct/" + "9" * 300)
    line = zone_file_line(
        build_record("example.com", issuer_domain="authority.example", account=long_account)
    )
    strings = line.split(" IN TXT ", 1)[1]
    assert strings.count('" "') == 1
    assert all(len(s) <= 255 for s in strings.strip('"').split('" "'))


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: s[2:4] != "--"
)
_domain = st.lists(_label, min_size=2, max_size=4).map(".".join)


@given(
    name=_domain,
    wildcard_name=st.booleans(),
    issuer=_domain,
    account_path=st.from_regex(r"[A-Za-z0-9/_-]{1,40}", fullmatch=True),
    hashed=st.booleans(),
    wildcard=st.booleans(),
    until=st.none() | st.integers(min_value=0, max_value=2**40),
)
def test_build_then_parse_round_trips(
    name: str,
    wildcard_name: bool,
    issuer: str,
    account_path: str,
    hashed: bool,
    wildcard: bool,
    until: int | None,
) -> None:
    account = AccountBinding(
        "https://ca.example/" + account_path,
        key_thumbprint=THUMBPRINT if hashed else None,
        hash_prefix=PREFIX if hashed else None,
    )
    requested = f"*.{name}" if wildcard_name else name
    spec = build_record(
        requested, issuer_domain=issuer, account=account, wildcard=wildcard, persist_until=until
    )
    record = parse_record(spec.value)
    assert record == spec.record
    assert record.wildcard == (wildcard or wildcard_name)
    assert record.persist_until == until
    now = datetime(2000, 1, 1, tzinfo=UTC)
    status = evaluate(
        [spec.value],
        name=requested,
        issuer_domains=[issuer],
        account=account,
        now=now,
        warn_days=0,
    )
    expected = PersistState.OK if until is None or until >= now.timestamp() else None
    assert status.state is (expected or PersistState.EXPIRED)
