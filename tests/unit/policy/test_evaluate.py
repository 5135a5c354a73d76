"""``policy.evaluate``, the pure rule check behind every request, rule by rule.

Each row of the table is one request against one rule set and the warning codes (and the
field each is about) that a person is shown; hypothesis adds the properties that hold for
any request: no rules, no warnings; every code at most once per rule; a rule never fires
for a request that satisfies it by construction.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certautopilot.certificates.schemas import KeyType
from certautopilot.issuers.models import Issuer
from certautopilot.policy.schemas import PolicyRules
from certautopilot.policy.service import evaluate

KEY_TYPES: list[str] = list(KeyType.__args__)  # type: ignore[attr-defined]
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
PROD = "https://acme-v02.api.letsencrypt.org/directory"


def issuer(name: str = "le", *, directory: str = PROD, id: str = "iss-1") -> Issuer:
    return Issuer(id=id, name=name, kind="acme", config={"directory_url": directory})


def run(
    rules: dict[str, Any],
    *,
    names: list[str] | None = None,
    key_type: str = "ecdsa-p256",
    auto_renew: bool = True,
    via: Issuer | None = None,
) -> list[tuple[str, str]]:
    warnings = evaluate(
        PolicyRules.model_validate(rules),
        issuer=via or issuer(),
        names=names if names is not None else ["www.example.com"],
        key_type=key_type,
        auto_renew=auto_renew,
    )
    return [(w.code, w.field) for w in warnings]


CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str]]]] = [
    ("no rules", {}, {}, []),
    # allowed issuers: by id or by name
    ("issuer allowed by name", {"allowed_issuers": ["le"]}, {}, []),
    ("issuer allowed by id", {"allowed_issuers": ["iss-1"]}, {}, []),
    ("issuer not listed", {"allowed_issuers": ["other"]}, {}, [("issuer_not_allowed", "issuer")]),
    (
        "empty allow-list allows none",
        {"allowed_issuers": []},
        {},
        [("issuer_not_allowed", "issuer")],
    ),
    # denied ACME directories (glob), one warning however many patterns match
    (
        "staging banned",
        {"denied_acme_directories": ["*acme-staging*"]},
        {"via": issuer(directory=STAGING)},
        [("acme_directory_denied", "issuer")],
    ),
    ("production not banned", {"denied_acme_directories": ["*acme-staging*"]}, {}, []),
    (
        "two matching patterns, one warning",
        {"denied_acme_directories": ["*staging*", "https://*"]},
        {"via": issuer(directory=STAGING)},
        [("acme_directory_denied", "issuer")],
    ),
    (
        "an issuer without a directory (AD CS) is never banned",
        {"denied_acme_directories": ["*"]},
        {"via": Issuer(id="a", name="adcs", kind="adcs", config={"url": "https://ca/x"})},
        [],
    ),
    # key types and minimum sizes
    ("key type allowed", {"allowed_key_types": ["ecdsa-p256"]}, {}, []),
    (
        "key type not allowed",
        {"allowed_key_types": ["rsa-3072"]},
        {},
        [("key_type_not_allowed", "key_type")],
    ),
    ("rsa at the minimum", {"min_rsa_bits": 3072}, {"key_type": "rsa-3072"}, []),
    (
        "rsa below the minimum",
        {"min_rsa_bits": 3072},
        {"key_type": "rsa-2048"},
        [("key_too_small", "key_type")],
    ),
    ("rsa minimum ignores ecdsa", {"min_rsa_bits": 4096}, {"key_type": "ecdsa-p256"}, []),
    (
        "ecdsa below the minimum",
        {"min_ecdsa_bits": 384},
        {"key_type": "ecdsa-p256"},
        [("key_too_small", "key_type")],
    ),
    ("ecdsa at the minimum", {"min_ecdsa_bits": 384}, {"key_type": "ecdsa-p384"}, []),
    ("ecdsa minimum ignores rsa", {"min_ecdsa_bits": 384}, {"key_type": "rsa-2048"}, []),
    (
        "type and size both broken",
        {"allowed_key_types": ["rsa-4096"], "min_rsa_bits": 3072},
        {"key_type": "rsa-2048"},
        [("key_type_not_allowed", "key_type"), ("key_too_small", "key_type")],
    ),
    # required SAN suffixes: at least one name under each
    ("required suffix present", {"required_san_suffixes": ["example.com"]}, {}, []),
    (
        "the suffix itself counts",
        {"required_san_suffixes": ["example.com"]},
        {"names": ["example.com"]},
        [],
    ),
    (
        "a wildcard counts by its base",
        {"required_san_suffixes": ["example.com"]},
        {"names": ["*.example.com"]},
        [],
    ),
    (
        "a lookalike does not count",
        {"required_san_suffixes": ["example.com"]},
        {"names": ["www.badexample.com"]},
        [("san_suffix_required", "sans")],
    ),
    (
        "one warning per missing suffix",
        {"required_san_suffixes": ["a.test", "b.test"]},
        {"names": ["x.c.test"]},
        [("san_suffix_required", "sans"), ("san_suffix_required", "sans")],
    ),
    ("suffixes are normalised", {"required_san_suffixes": ["*.Example.COM."]}, {}, []),
    # allowed name suffixes: every name under one
    (
        "all names allowed",
        {"allowed_name_suffixes": ["example.com"]},
        {"names": ["a.example.com", "example.com"]},
        [],
    ),
    (
        "one warning per outside name",
        {"allowed_name_suffixes": ["example.com"]},
        {"names": ["a.example.com", "b.other.test", "c.other.test"]},
        [("name_not_allowed", "sans"), ("name_not_allowed", "sans")],
    ),
    (
        "empty allow-list allows no name",
        {"allowed_name_suffixes": []},
        {},
        [("name_not_allowed", "sans")],
    ),
    # forbidden common-name patterns: glob matches the whole name, regex is searched
    (
        "glob matches",
        {"forbidden_cn_patterns": [{"pattern": "*.internal.*"}]},
        {"names": ["db.internal.example.com"]},
        [("cn_forbidden", "common_name")],
    ),
    (
        "glob is whole-name",
        {"forbidden_cn_patterns": [{"pattern": "internal"}]},
        {"names": ["internal.example.com"]},
        [],
    ),
    (
        "glob ignores case",
        {"forbidden_cn_patterns": [{"pattern": "TEST.*"}]},
        {"names": ["test.example.com"]},
        [("cn_forbidden", "common_name")],
    ),
    (
        "regex is searched",
        {"forbidden_cn_patterns": [{"pattern": "dev", "kind": "regex"}]},
        {"names": ["a.dev.example.com"]},
        [("cn_forbidden", "common_name")],
    ),
    (
        "anchored regex",
        {"forbidden_cn_patterns": [{"pattern": "^dev\\.", "kind": "regex"}]},
        {"names": ["a.dev.example.com"]},
        [],
    ),
    (
        "only the common name (first name) is checked",
        {"forbidden_cn_patterns": [{"pattern": "*.internal.*"}]},
        {"names": ["www.example.com", "db.internal.example.com"]},
        [],
    ),
    (
        "each matching pattern warns",
        {"forbidden_cn_patterns": [{"pattern": "www.*"}, {"pattern": "w+", "kind": "regex"}]},
        {},
        [("cn_forbidden", "common_name"), ("cn_forbidden", "common_name")],
    ),
    (
        "no names, no common name to check",
        {"forbidden_cn_patterns": [{"pattern": "*"}]},
        {"names": []},
        [],
    ),
    # mandatory auto-renew
    ("auto-renew on", {"mandatory_auto_renew": True}, {"auto_renew": True}, []),
    (
        "auto-renew off",
        {"mandatory_auto_renew": True},
        {"auto_renew": False},
        [("auto_renew_required", "auto_renew")],
    ),
    ("auto-renew not required", {}, {"auto_renew": False}, []),
    # approval is not a warning: it routes the request to approvers instead
    (
        "approval required warns nothing",
        {"approval_required": True, "request_expiry_days": 3},
        {},
        [],
    ),
    # every rule at once, in the order a person reads them
    (
        "everything broken",
        {
            "allowed_issuers": ["other"],
            "denied_acme_directories": ["*staging*"],
            "allowed_key_types": ["ecdsa-p384"],
            "min_ecdsa_bits": 384,
            "required_san_suffixes": ["corp.test"],
            "allowed_name_suffixes": ["corp.test"],
            "forbidden_cn_patterns": [{"pattern": "www.*"}],
            "mandatory_auto_renew": True,
        },
        {"via": issuer(directory=STAGING), "auto_renew": False},
        [
            ("issuer_not_allowed", "issuer"),
            ("acme_directory_denied", "issuer"),
            ("key_type_not_allowed", "key_type"),
            ("key_too_small", "key_type"),
            ("san_suffix_required", "sans"),
            ("name_not_allowed", "sans"),
            ("cn_forbidden", "common_name"),
            ("auto_renew_required", "auto_renew"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("rules", "request_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(
    rules: dict[str, Any], request_: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert run(rules, **request_) == expected


def test_fields_follow_the_caller() -> None:
    """The web form names its fields differently; warnings point at the caller's fields."""
    warnings = evaluate(
        PolicyRules(allowed_key_types=["rsa-4096"], required_san_suffixes=["corp.test"]),
        issuer=issuer(),
        names=["www.example.com"],
        key_type="ecdsa-p256",
        auto_renew=True,
        key_field="key",
        names_field="names",
    )
    assert [(w.code, w.field) for w in warnings] == [
        ("key_type_not_allowed", "key"),
        ("san_suffix_required", "names"),
    ]


def test_messages_say_what_to_do() -> None:
    [issuer_w, key_w, small_w, cn_w] = evaluate(
        PolicyRules(
            allowed_issuers=["prod"],
            allowed_key_types=["rsa-4096", "ecdsa-p384"],
            min_ecdsa_bits=384,
            forbidden_cn_patterns=[{"pattern": "^www", "kind": "regex"}],  # type: ignore[list-item]
        ),
        issuer=issuer("staging"),
        names=["www.example.com"],
        key_type="ecdsa-p256",
        auto_renew=True,
    )
    assert issuer_w.message == "Project policy does not allow the issuer 'staging'."
    assert "use one of rsa-4096, ecdsa-p384" in key_w.message
    assert small_w.message == "A 256-bit ECDSA key is below the project's minimum of 384 bits."
    assert "'^www' (regex)" in cn_w.message
    assert issuer_w.as_dict() == {
        "code": "issuer_not_allowed",
        "field": "issuer",
        "message": issuer_w.message,
    }


# -- properties -----------------------------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)
SUFFIX = st.lists(LABEL, min_size=1, max_size=3).map(".".join).map(lambda s: s + ".test")


@st.composite
def names_under(draw: st.DrawFn, suffix: str) -> list[str]:
    prefixes = draw(st.lists(st.lists(LABEL, max_size=2).map(".".join), min_size=1, max_size=4))
    return [f"{p}.{suffix}" if p else suffix for p in prefixes]


@given(st.data(), st.sampled_from(KEY_TYPES), st.booleans())
def test_no_rules_no_warnings(data: st.DataObject, key_type: str, auto_renew: bool) -> None:
    names = data.draw(names_under(data.draw(SUFFIX)))
    assert run({}, names=names, key_type=key_type, auto_renew=auto_renew) == []


@given(st.data())
def test_names_under_the_allowed_suffix_always_pass(data: st.DataObject) -> None:
    suffix = data.draw(SUFFIX)
    names = data.draw(names_under(suffix))
    rules = {"allowed_name_suffixes": [suffix], "required_san_suffixes": [suffix]}
    assert run(rules, names=names) == []


@given(st.data())
def test_each_name_outside_the_allowed_suffix_warns_once(data: st.DataObject) -> None:
    inside = data.draw(names_under("corp.test"))
    outside = data.draw(names_under("elsewhere.example"))
    found = run({"allowed_name_suffixes": ["corp.test"]}, names=inside + outside)
    assert found == [("name_not_allowed", "sans")] * len(outside)


@given(st.sampled_from(KEY_TYPES), st.sampled_from([2048, 3072, 4096]), st.sampled_from([256, 384]))
def test_key_size_rule_matches_the_key_bits(key_type: str, rsa_min: int, ec_min: int) -> None:
    family, _, size = key_type.partition("-")
    bits = {"p256": 256, "p384": 384}.get(size) or int(size)
    minimum = rsa_min if family == "rsa" else ec_min
    found = run({"min_rsa_bits": rsa_min, "min_ecdsa_bits": ec_min}, key_type=key_type)
    assert found == ([("key_too_small", "key_type")] if bits < minimum else [])


@given(st.lists(st.sampled_from(KEY_TYPES), unique=True), st.sampled_from(KEY_TYPES))
def test_key_type_rule_is_membership(allowed: list[str], key_type: str) -> None:
    found = run({"allowed_key_types": allowed}, key_type=key_type)
    assert found == ([] if key_type in allowed else [("key_type_not_allowed", "key_type")])
