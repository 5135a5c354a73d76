"""The dns-persist-01 record as the lab's real BIND serves it, read on the authoritative server.

The service never writes this record; the test plays the person who adds it, with dnspython
and the lab's TSIG key.
"""

from __future__ import annotations

import secrets
import shutil
from datetime import UTC, datetime, timedelta

import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from certautopilot.dns.persist import (
    AccountBinding,
    PersistState,
    build_record,
    check_authoritative,
    query_txt,
)
from certautopilot_lab.info import LabInfo

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        shutil.which("pebble") is None or shutil.which("named", path="/usr/sbin:/usr/bin") is None,
        reason="needs Debian packages pebble and bind9",
    ),
]

ACCOUNT = AccountBinding(
    "https://ca.example/acct/123",
    key_thumbprint="NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    hash_prefix="https://ca.example/account-hash/",
)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _put(lab: LabInfo, fqdn: str, *strings: str, replace: bool = True) -> None:
    """What a person does in their DNS console; long values go as several strings."""
    keyring = dns.tsigkeyring.from_text({lab.tsig_name: lab.tsig_secret})
    update = dns.update.UpdateMessage(
        "manual.test", keyring=keyring, keyalgorithm=lab.tsig_algorithm
    )
    rdata = " ".join('"' + s + '"' for s in strings)
    if replace:
        update.replace(fqdn + ".", 60, "TXT", rdata)
    else:
        update.add(fqdn + ".", 60, "TXT", rdata)
    response = dns.query.tcp(update, lab.dns_host, port=lab.dns_port, timeout=5)
    assert response.rcode() == 0


def _check(lab: LabInfo, name: str, **kw: object) -> PersistState:
    result = check_authoritative(
        name,
        [lab.dns_server],
        issuer_domains=["authority.example"],
        account=ACCOUNT,
        now=kw.pop("now", NOW),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return result.status.state


def test_missing_then_ok_then_expiring(lab: LabInfo) -> None:
    name = f"p{secrets.token_hex(4)}.manual.test"
    assert _check(lab, name) is PersistState.MISSING
    answer = query_txt(f"_validation-persist.{name}", *lab.dns_server)
    assert answer.error == "NXDOMAIN" and answer.values == ()

    spec = build_record(name, issuer_domain="authority.example", account=ACCOUNT)
    _put(lab, spec.record_name, spec.value)
    result = check_authoritative(
        name, [lab.dns_server], issuer_domains=["authority.example"], account=ACCOUNT, now=NOW
    )
    assert result.status.state is PersistState.OK
    assert result.record_name == f"_validation-persist.{name}"
    (served, verdict), *_ = result.servers
    assert served.values == (spec.value,)
    assert verdict is not None and verdict.usable

    until = NOW + timedelta(days=10)
    soon = build_record(
        name, issuer_domain="authority.example", account=ACCOUNT, persist_until=until
    )
    _put(lab, soon.record_name, soon.value)
    assert _check(lab, name) is PersistState.EXPIRES_SOON
    assert _check(lab, name, warn_days=5) is PersistState.OK
    assert _check(lab, name, now=until + timedelta(seconds=1)) is PersistState.EXPIRED


def test_wildcard_wrong_account_and_other_issuers(lab: LabInfo) -> None:
    name = f"w{secrets.token_hex(4)}.manual.test"
    plain = build_record(name, issuer_domain="authority.example", account=ACCOUNT)
    _put(lab, plain.record_name, plain.value)
    assert _check(lab, f"*.{name}") is PersistState.NO_WILDCARD_POLICY

    other_ca = build_record(name, issuer_domain="ca.other", account=ACCOUNT, wildcard=True)
    _put(lab, other_ca.record_name, other_ca.value)
    assert _check(lab, name) is PersistState.WRONG_ISSUER

    wildcard = build_record(f"*.{name}", issuer_domain="authority.example", account=ACCOUNT)
    _put(lab, wildcard.record_name, wildcard.value, replace=False)  # beside the other CA's
    assert _check(lab, f"*.{name}") is PersistState.OK

    someone_else = AccountBinding(
        "https://ca.example/acct/999", ACCOUNT.key_thumbprint, ACCOUNT.hash_prefix
    )
    result = check_authoritative(
        name,
        [lab.dns_server],
        issuer_domains=["authority.example"],
        account=someone_else,
        now=NOW,
    )
    assert result.status.state is PersistState.WRONG_ACCOUNT
    assert "accounturi=" in result.status.detail


def test_a_long_value_in_several_strings_is_joined(lab: LabInfo) -> None:
    name = f"l{secrets.token_hex(4)}.manual.test"
    account = AccountBinding("https://ca.example/acct/" + "7" * 300)
    spec = build_record(name, issuer_domain="authority.example", account=account)
    _put(lab, spec.record_name, spec.value[:255], spec.value[255:])
    result = check_authoritative(
        name, [lab.dns_server], issuer_domains=["authority.example"], account=account, now=NOW
    )
    assert result.status.state is PersistState.OK


def test_a_silent_server_is_unchecked_not_missing(lab: LabInfo) -> None:
    name = f"s{secrets.token_hex(4)}.manual.test"
    result = check_authoritative(
        name,
        [("127.0.0.1", 9)],  # nothing answers DNS there
        issuer_domains=["authority.example"],
        account=ACCOUNT,
        now=NOW,
        timeout=0.3,
    )
    assert result.status.state is PersistState.UNCHECKED
    assert "127.0.0.1:9" in result.status.detail
    # With the real server beside it, the verdict is the real server's, and the silence noted.
    spec = build_record(name, issuer_domain="authority.example", account=ACCOUNT)
    _put(lab, spec.record_name, spec.value)
    result = check_authoritative(
        name,
        [lab.dns_server, ("127.0.0.1", 9)],
        issuer_domains=["authority.example"],
        account=ACCOUNT,
        now=NOW,
        timeout=0.3,
    )
    assert result.status.state is PersistState.OK
    assert "no answer from 127.0.0.1:9" in result.status.detail
