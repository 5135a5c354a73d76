from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certautopilot.errors import InvalidInput, IssuerError
from certautopilot.issuers.models import Issuer
from certautopilot.renewal.acme_info import advertised_profiles, renewal_info_url
from certautopilot.renewal.ari import RenewalInfo, cert_id, serial_octets
from certautopilot.renewal.ari_refresh import Target, ari_cert_id_of, lookup
from certautopilot.renewal.profiles import check_profile

LE_LIKE = {
    "newOrder": "https://ca.test/new-order",
    "renewalInfo": "https://ca.test/renewal-info",
    "meta": {"profiles": {"classic": "90 days", "shortlived": "6 days"}},
}


def _issuer(kind: str = "acme") -> Issuer:
    return Issuer(kind=kind, name="ca", config={"directory_url": "https://ca.test/dir"})


def _fetch(directory: dict[str, Any]) -> Any:
    return lambda url, bundle: directory


def test_profiles_read_from_the_directory_meta() -> None:
    assert advertised_profiles(LE_LIKE) == {"classic": "90 days", "shortlived": "6 days"}
    assert advertised_profiles({"meta": {}}) == {} and advertised_profiles({}) == {}


def test_advertised_profile_accepted_others_refused() -> None:
    check_profile(_issuer(), "shortlived", fetch=_fetch(LE_LIKE))
    with pytest.raises(InvalidInput) as refused:
        check_profile(_issuer(), "tlsserver", fetch=_fetch(LE_LIKE))
    assert "classic, shortlived" in str(refused.value.errors)
    with pytest.raises(InvalidInput):
        check_profile(_issuer(), "shortlived", fetch=_fetch({"meta": {}}))
    with pytest.raises(InvalidInput):
        check_profile(_issuer("adcs"), "shortlived", fetch=_fetch(LE_LIKE))


def _leaf(serial: int, aki: bytes | None) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.test")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
    )
    if aki is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(aki, None, None), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_ari_cert_id_from_a_certificate() -> None:
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert ari_cert_id_of(_leaf(0x87654321, aki)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert ari_cert_id_of(_leaf(5, None)) is None
    assert cert_id(aki, serial_octets(5)).endswith(".BQ")


def _target(ari_id: str | None = "abc.AQ") -> Target:
    return Target("c1", "v1", "https://ca.test/dir", None, ari_id)


def test_lookup_uses_renewal_info_only_when_offered() -> None:
    window = RenewalInfo(
        datetime(2025, 1, 2, 4, tzinfo=UTC), datetime(2025, 1, 3, 4, tzinfo=UTC), None, 21600
    )
    asked: list[tuple[str, str]] = []

    def info(base: str, cid: str, bundle: str | None) -> RenewalInfo:
        asked.append((base, cid))
        return window

    assert lookup(_target(), fetch_directory=_fetch(LE_LIKE), fetch_info=info) == window
    assert asked == [("https://ca.test/renewal-info", "abc.AQ")]
    pebble = {"newOrder": "https://pebble/order-plz", "meta": {}}
    assert lookup(_target(), fetch_directory=_fetch(pebble), fetch_info=info) == "no-ari"
    assert lookup(_target(None), fetch_directory=_fetch(LE_LIKE), fetch_info=info) == "no-ari"
    assert renewal_info_url(pebble) is None


def test_lookup_errors_keep_the_time_there_was() -> None:
    def broken(base: str, cid: str, bundle: str | None) -> RenewalInfo:
        raise IssuerError("renewalInfo: suggestedWindow ends before it starts")

    outcome = lookup(_target(), fetch_directory=_fetch(LE_LIKE), fetch_info=broken)
    assert isinstance(outcome, str) and outcome.startswith("error:")
