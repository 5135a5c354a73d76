"""decide_persist: answer an offered dns-persist-01 challenge only when the record checks out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from certautopilot.certificates.persist import decide_persist
from certautopilot.dns.persist import AccountBinding, PersistState, ServerTxt, build_record

ACCOUNT = AccountBinding(
    "https://ca.example/acct/123",
    key_thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    hash_prefix="https://ca.example/account-hash/",
)
META = {"issuerDomainNames": ["authority.example"], "accountHashPrefix": ACCOUNT.hash_prefix}
CHALLENGE = {"type": "dns-persist-01", "issuerDomainNames": ["authority.example", "ca.example.net"]}
NOW = datetime(2026, 12, 1, tzinfo=UTC)
GOOD = build_record("example.com", issuer_domain="ca.example.net", account=ACCOUNT).value


def _serving(*values: str) -> Any:
    """A DNS server (an external system) that serves ``values`` at every name."""

    def query(fqdn: str, host: str, port: int, *, timeout: float) -> ServerTxt:
        return ServerTxt(f"{host}:{port}", values=values)

    return query


def _decide(challenge: dict[str, Any], *values: str, meta: dict[str, Any] = META) -> Any:
    return decide_persist(
        challenge,
        name="example.com",
        directory_meta=meta,
        account=ACCOUNT,
        nameservers=[("192.0.2.1", 53)],
        now=NOW,
        query=_serving(*values),
    )


def test_a_good_record_for_any_offered_issuer_name_is_answered() -> None:
    decision = _decide(CHALLENGE, GOOD)
    assert decision.answer and decision.state is PersistState.OK


def test_a_missing_or_wrong_record_is_not_answered() -> None:
    assert _decide(CHALLENGE).state is PersistState.MISSING
    other = build_record(
        "example.com", issuer_domain="authority.example", account=AccountBinding("x:1")
    ).value
    decision = _decide(CHALLENGE, other)
    assert not decision.answer and decision.state is PersistState.WRONG_ACCOUNT


def test_a_malformed_challenge_is_not_answered() -> None:
    decision = _decide({"type": "dns-persist-01", "issuerDomainNames": []}, GOOD)
    assert not decision.answer and decision.state is PersistState.MALFORMED
    # §3.2: every name of the directory must be offered by the challenge.
    lacking = {"type": "dns-persist-01", "issuerDomainNames": ["ca.example.net"]}
    assert _decide(lacking, GOOD).state is PersistState.MALFORMED
    # Without directory names (a CA on an older draft) the challenge's own names are used.
    assert _decide(lacking, GOOD, meta={}).answer
