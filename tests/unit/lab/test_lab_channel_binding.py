"""The AD CS double's tls-server-end-point binding (RFC 5929 4.1), computed on its own.

The expected values are fixed: `openssl x509 -noout -fingerprint -sha256|-sha384` of the
fixture certificates (made with `openssl req -x509`), so neither side's code produced them.
Then the double and the client's helper must agree, or a channel-binding test would prove
only that both share a bug.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from certautopilot.issuers.adcs.auth import tls_server_end_point as client_binding
from certautopilot_lab.adcs_double import AdcsDouble
from certautopilot_lab.channel_binding import end_point_hash, tls_server_end_point

FIXTURES = Path(__file__).parent / "fixtures"

# fixture -> (hash RFC 5929 picks, openssl's fingerprint of the DER with that hash)
EXPECTED = {
    "rsa-sha256.pem": (
        "sha256",
        "8E:EC:B1:72:7A:5E:B5:56:B1:39:C4:E3:C1:88:54:62:"
        "9F:10:FD:27:EB:32:C8:B8:AF:DD:0A:37:EC:E0:41:6F",
    ),
    "ecdsa-sha384.pem": (
        "sha384",
        "80:83:0A:8B:4D:18:02:F6:D2:E2:61:FA:26:DC:98:C7:2A:CE:91:D5:02:CC:BD:94:"
        "90:91:A3:DC:67:6B:7C:4B:CE:50:43:1F:7C:03:9A:21:E0:86:E2:8C:38:73:AE:29",
    ),
    # signed with SHA-1: RFC 5929 replaces SHA-1 (and MD5) by SHA-256
    "rsa-sha1.pem": (
        "sha256",
        "46:CF:D8:20:58:CF:E1:3D:3A:52:76:36:81:23:00:06:"
        "F6:A7:A3:85:A5:95:3C:6D:ED:65:5F:40:76:96:11:21",
    ),
}


def _der(name: str) -> bytes:
    cert = x509.load_pem_x509_certificate((FIXTURES / name).read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_double_binding_matches_the_hand_computed_value(name: str) -> None:
    algorithm, fingerprint = EXPECTED[name]
    der = _der(name)
    assert end_point_hash(der) == algorithm
    assert tls_server_end_point(der) == b"tls-server-end-point:" + bytes.fromhex(
        fingerprint.replace(":", "")
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_double_and_client_agree(name: str) -> None:
    der = _der(name)
    assert tls_server_end_point(der) == client_binding(der)


def test_double_binds_the_certificate_its_tls_server_presents(tmp_path: Path) -> None:
    with AdcsDouble(tmp_path) as double:
        context = ssl.create_default_context(cadata=double.ca_bundle_pem)
        with (
            socket.create_connection((double.host, double.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=double.host) as tls,
        ):
            presented = tls.getpeercert(binary_form=True)
        assert presented is not None
        expected = tls_server_end_point(presented)
        assert double.bindings.application_data == expected
        assert expected == client_binding(presented)  # what the client will send


def test_an_algorithm_without_a_single_hash_has_no_binding() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed25519.double.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, None)
    )
    with pytest.raises(ValueError, match=r"1\.3\.101\.112"):
        tls_server_end_point(cert.public_bytes(serialization.Encoding.DER))
