"""The Web Enrollment client against the certsrv double: each auth mode, channel binding,
keep-alive across the NTLM handshake, and every failure translated and picklable."""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certautopilot.crypto import keys
from certautopilot.errors import IssuerError, TransientIssuerError
from certautopilot.issuers.adcs import client as adcs_client
from certautopilot.issuers.adcs.auth import tls_server_end_point
from certautopilot.issuers.adcs.client import AdcsClient, AdcsSettings, Issued
from certautopilot_lab.adcs_double import AdcsDouble, free_port

USER, PASSWORD = "CORP\\svc-pki", "Corp-Pass-1"


@pytest.fixture(scope="module")
def csr_pem() -> str:
    return keys.build_csr(keys.generate_key("ecdsa-p256"), ["a.corp.test", "b.corp.test"]).decode()


@pytest.fixture(scope="module")
def open_double() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"basic", "ntlm"}) as d:
        yield d


@pytest.fixture(scope="module")
def hardened() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"ntlm"}, require_channel_binding=True) as d:
        yield d


def settings(double: AdcsDouble, auth: str = "basic", **extra: object) -> AdcsSettings:
    base: dict[str, object] = {
        "url": double.url,
        "auth": auth,
        "ca_bundle_pem": double.ca_bundle_pem,
    }
    if auth in ("basic", "ntlm"):
        base |= {"username": USER, "password": PASSWORD}
    return AdcsSettings(**(base | extra))  # type: ignore[arg-type]


def enroll(client: AdcsClient, csr_pem: str) -> Issued:
    with client.session() as ca:
        ca.home()
        assert ca.templates() == ["WebServer", "WebServerApproval"]
        submission = ca.submit(csr_pem, "WebServer")
        assert submission.kind == "issued"
        assert submission.request_id is not None
        issued = ca.fetch(submission.request_id)
        assert isinstance(issued, Issued)
        chain = ca.ca_chain()
    assert {c.subject for c in chain} >= {issued.certificate.issuer}
    return issued


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_enrolls_with_basic_and_ntlm(open_double: AdcsDouble, csr_pem: str, auth: str) -> None:
    issued = enroll(AdcsClient(settings(open_double, auth)), csr_pem)
    assert open_double.requests[issued.request_id].requester == USER
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert set(san.value.get_values_for_type(x509.DNSName)) == {"a.corp.test", "b.corp.test"}


def test_ntlm_keeps_one_connection_and_one_handshake(hardened: AdcsDouble, csr_pem: str) -> None:
    before = (hardened.stats.connections, hardened.stats.ntlm_handshakes)
    enroll(AdcsClient(settings(hardened, "ntlm")), csr_pem)
    # six calls (home, templates, submit, fetch, certcarc, p7b) on one authenticated connection
    assert (hardened.stats.connections, hardened.stats.ntlm_handshakes) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_required_channel_binding_refuses_a_client_without_it(hardened: AdcsDouble) -> None:
    refused = hardened.stats.refused_bindings
    client = AdcsClient(settings(hardened, "ntlm", send_channel_binding=False))
    with pytest.raises(IssuerError) as caught, client.session() as ca:
        ca.home()
    assert caught.value.problem_type == adcs_client.PT_UNAUTHORIZED
    assert "channel binding" in str(caught.value)
    assert hardened.stats.refused_bindings == refused + 1
    with AdcsClient(settings(hardened, "ntlm")).session() as ca:
        ca.home()  # the same credentials with the binding pass


def test_ntlm_inside_negotiate_with_required_binding(csr_pem: str) -> None:
    """Only ``Negotiate`` offered (as with Kerberos): SPNEGO-wrapped NTLM, binding checked."""
    with AdcsDouble(
        auth_modes={"ntlm"}, require_channel_binding=True, windows_schemes=("Negotiate",)
    ) as double:
        issued = enroll(AdcsClient(settings(double, "ntlm")), csr_pem)
        assert double.requests[issued.request_id].requester == USER
        without = AdcsClient(settings(double, "ntlm", send_channel_binding=False))
        with pytest.raises(IssuerError) as caught, without.session() as ca:
            ca.home()
        assert caught.value.problem_type == adcs_client.PT_UNAUTHORIZED
        assert double.stats.refused_bindings == 1


def test_client_certificate(csr_pem: str) -> None:
    with AdcsDouble(auth_modes={"client_cert"}) as double:
        cert, key = double.client_certificate("svc-pki")
        issued = enroll(
            AdcsClient(settings(double, "client_cert", client_cert_pem=cert, client_key_pem=key)),
            csr_pem,
        )
        assert double.requests[issued.request_id].requester == "svc-pki"
        # without a certificate IIS answers 403.7
        no_cert = AdcsClient(settings(double, "basic", username="x", password="y"))
        with pytest.raises(IssuerError) as caught, no_cert.session() as ca:
            ca.home()
        assert caught.value.problem_type == adcs_client.PT_FORBIDDEN
        assert "403.7" in str(caught.value)


def test_wrong_password_is_401(open_double: AdcsDouble) -> None:
    for auth in ("basic", "ntlm"):
        with (
            pytest.raises(IssuerError) as caught,
            AdcsClient(settings(open_double, auth, password="wrong")).session() as ca,
        ):
            ca.home()
        assert caught.value.problem_type == adcs_client.PT_UNAUTHORIZED
        assert "401" in str(caught.value)


def test_untrusted_server_certificate_is_a_tls_error(open_double: AdcsDouble) -> None:
    with (
        pytest.raises(IssuerError) as caught,
        AdcsClient(settings(open_double, ca_bundle_pem=None)).session() as ca,
    ):
        ca.home()
    assert caught.value.problem_type == adcs_client.PT_TLS
    assert not isinstance(caught.value, TransientIssuerError)
    assert "not trusted" in str(caught.value)


def test_unreachable_ca_is_transient(open_double: AdcsDouble) -> None:
    url = f"https://127.0.0.1:{free_port()}/certsrv"
    with (
        pytest.raises(TransientIssuerError) as caught,
        AdcsClient(settings(open_double, url=url)).session() as ca,
    ):
        ca.home()
    again = pickle.loads(pickle.dumps(caught.value))  # DBOS pickles step errors
    assert (type(again), str(again), again.problem_type) == (
        TransientIssuerError,
        str(caught.value),
        adcs_client.PT_UNREACHABLE,
    )


def test_pending_denied_and_unknown_requests(open_double: AdcsDouble, csr_pem: str) -> None:
    with AdcsClient(settings(open_double)).session() as ca:
        pending = ca.submit(csr_pem, "WebServerApproval")
        assert pending.kind == "pending" and pending.request_id is not None
        status = ca.fetch(pending.request_id)
        assert not isinstance(status, Issued) and status.kind == "pending"
        open_double.deny(pending.request_id)
        status = ca.fetch(pending.request_id)
        assert not isinstance(status, Issued) and status.kind == "denied"
        assert status.code == "0x80094014"
        unknown = ca.submit(csr_pem, "NoSuchTemplate")
        assert unknown.kind == "denied" and unknown.unknown_template
        missing = ca.fetch(999_999)
        assert not isinstance(missing, Issued) and missing.kind == "not_found"


def test_kerberos_without_gssapi_says_what_is_missing(open_double: AdcsDouble) -> None:
    try:
        import gssapi  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gssapi is installed here; this checks the message when it is not")
    double = AdcsDouble(auth_modes={"ntlm"}).start()  # offers Negotiate
    try:
        with (
            pytest.raises(IssuerError) as caught,
            AdcsClient(settings(double, "kerberos")).session() as ca,
        ):
            ca.home()
    finally:
        double.stop()
    assert caught.value.problem_type == adcs_client.PT_KERBEROS
    assert "gssapi" in str(caught.value)


def _self_signed(algorithm: hashes.HashAlgorithm) -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        (hashes.SHA512(), hashes.SHA512()),
        (hashes.SHA256(), hashes.SHA256()),
        (hashes.SHA384(), hashes.SHA384()),
    ],
)
def test_tls_server_end_point_hash_follows_rfc_5929(
    algorithm: hashes.HashAlgorithm, digest: hashes.HashAlgorithm
) -> None:
    der = _self_signed(algorithm)
    h = hashes.Hash(digest)
    h.update(der)
    assert tls_server_end_point(der) == b"tls-server-end-point:" + h.finalize()
