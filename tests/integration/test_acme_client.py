"""The ACME client against a real Pebble CA, whose DNS is pebble-challtestsrv.

Each Pebble here is started by this module on free loopback ports (see
``_pebble_fixture.py``) and stopped at teardown. No part of the CA is mocked.
Run with ``-s`` to see the measured issuance times.
"""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWK

sys.path.insert(0, str(Path(__file__).parent))

from _pebble_fixture import (
    ChallTestSrv,
    Pebble,
    TlsFiles,
    binaries_present,
    make_tls,
)

from certautopilot.errors import IssuerError, TransientIssuerError
from certautopilot.issuers.acme.client import (
    AcmeClient,
    clear_client_cache,
    get_client,
)
from certautopilot.issuers.acme.keys import generate_account_key
from certautopilot.issuers.acme.types import AcmeOrder, Dns01Challenge

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not binaries_present(), reason="pebble / pebble-challtestsrv not installed"),
]

ERR = "urn:ietf:params:acme:error:"
EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
WRONG_HMAC = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"
TIMEOUT = 20.0
BLOCKED = "blocked.example.test"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("acme-lab")


@pytest.fixture(scope="module")
def tls(lab_dir: Path) -> TlsFiles:
    return make_tls(lab_dir / "tls")


@pytest.fixture(scope="module")
def dns(lab_dir: Path) -> Iterator[ChallTestSrv]:
    server = ChallTestSrv(lab_dir / "challtestsrv")
    try:
        yield server
    finally:
        server.stop()


def _pebble(lab_dir: Path, name: str, tls: TlsFiles, dns: ChallTestSrv, **kw: object) -> Pebble:
    return Pebble(lab_dir / name, tls, dns.dns_port, **kw)


@pytest.fixture(scope="module")
def pebble(lab_dir: Path, tls: TlsFiles, dns: ChallTestSrv) -> Iterator[Pebble]:
    ca = _pebble(lab_dir, "pebble", tls, dns, domain_blocklist=[BLOCKED])
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="module")
def pebble_eab(lab_dir: Path, tls: TlsFiles, dns: ChallTestSrv) -> Iterator[Pebble]:
    ca = _pebble(lab_dir, "pebble-eab", tls, dns, eab_keys={EAB_KID: EAB_HMAC})
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="module")
def pebble_bad_nonces(lab_dir: Path, tls: TlsFiles, dns: ChallTestSrv) -> Iterator[Pebble]:
    ca = _pebble(lab_dir, "pebble-nonces", tls, dns, nonce_reject_percent=50)
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="module")
def account(pebble: Pebble, tls: TlsFiles) -> tuple[JWK, str]:
    key, _pem = generate_account_key()
    client = AcmeClient(pebble.directory_url, key, ca_bundle_pem=tls.ca_pem)
    return key, client.register("ops@example.test", True)


@pytest.fixture
def client(pebble: Pebble, tls: TlsFiles, account: tuple[JWK, str]) -> AcmeClient:
    key, url = account
    return AcmeClient(pebble.directory_url, key, account_url=url, ca_bundle_pem=tls.ca_pem)


# ---------------------------------------------------------------------------- helpers


def fresh_domain() -> str:
    return f"t{uuid.uuid4().hex[:12]}.example.test"


def make_csr(names: list[str]) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


def publish(dns: ChallTestSrv, challenges: list[Dns01Challenge]) -> None:
    for ch in challenges:
        if ch.needs_answer:
            assert ch.txt_value is not None
            dns.set_txt(ch.txt_name, ch.txt_value)


def unpublish(dns: ChallTestSrv, challenges: list[Dns01Challenge]) -> None:
    for name in {ch.txt_name for ch in challenges}:
        dns.clear_txt(name)


def issue(client: AcmeClient, dns: ChallTestSrv, names: list[str]) -> tuple[str, bytes]:
    """The workflow's steps, in order, as a caller would run them."""
    csr_pem, _key = make_csr(names)
    order = client.new_order(csr_pem)
    challenges = client.dns01_challenges(order)
    try:
        publish(dns, challenges)
        for ch in challenges:
            if ch.needs_answer:
                assert ch.challenge_url is not None
                client.answer_challenge(ch.challenge_url)
        for ch in challenges:
            client.wait_authorization(ch.authz_url, timeout=TIMEOUT)
        chain = client.finalize(order, csr_pem, timeout=TIMEOUT)
    finally:
        unpublish(dns, challenges)
    return chain, csr_pem


def check_chain(
    chain_pem: str, names: list[str], csr_pem: bytes, root_pem: str
) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    assert len(certs) >= 2, "the default chain holds the leaf and its intermediate"
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    csr = x509.load_pem_x509_csr(csr_pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) == csr.public_key().public_bytes(serialization.Encoding.DER, spki)
    for child, parent in itertools.pairwise(certs):
        child.verify_directly_issued_by(parent)
    root = x509.load_pem_x509_certificate(root_pem.encode())
    certs[-1].verify_directly_issued_by(root)
    return leaf


# ---------------------------------------------------------------------------- directory


def test_directory_lookups(client: AcmeClient) -> None:
    assert client.directory_has("newOrder")
    assert client.directory_has("keyChange")
    # Pebble 2.4 has neither ARI nor profiles.
    assert not client.directory_has("renewalInfo")
    assert not client.directory_has("profiles")
    assert client.terms_of_service() == client.directory_meta()["termsOfService"]
    assert client.external_account_required() is False


def test_untrusted_ca_certificate_is_a_final_error(
    pebble: Pebble, lab_dir: Path, clock_sleeps: list[float]
) -> None:
    other_ca = make_tls(lab_dir / "other-tls").ca_pem
    key, _ = generate_account_key()
    for bundle in (other_ca, None):  # None: requests' default bundle, not REQUESTS_CA_BUNDLE
        client = AcmeClient(
            pebble.directory_url, key, ca_bundle_pem=bundle, sleep=clock_sleeps.append
        )
        with pytest.raises(IssuerError) as caught:
            client.register(None, True)
        assert type(caught.value) is IssuerError
        assert "certificate verify failed" in caught.value.detail
    assert clock_sleeps == [], "a trust failure is not retried"


@pytest.fixture
def clock_sleeps() -> list[float]:
    return []


# ---------------------------------------------------------------------------- accounts


def test_register_is_idempotent_and_findable(pebble: Pebble, tls: TlsFiles) -> None:
    key, _ = generate_account_key()
    client = AcmeClient(pebble.directory_url, key, ca_bundle_pem=tls.ca_pem)
    assert client.find_account() is None
    url = client.register("ops@example.test", True)
    assert url.startswith(pebble.directory_url.rsplit("/", 1)[0])
    assert client.account_url == url
    # A retried step registers again: the same account comes back.
    again = AcmeClient(pebble.directory_url, key, ca_bundle_pem=tls.ca_pem)
    assert again.register("ops@example.test", True) == url
    assert AcmeClient(pebble.directory_url, key, ca_bundle_pem=tls.ca_pem).find_account() == url


def test_eab_required(pebble_eab: Pebble, tls: TlsFiles) -> None:
    key, _ = generate_account_key()
    client = AcmeClient(pebble_eab.directory_url, key, ca_bundle_pem=tls.ca_pem)
    assert client.external_account_required() is True

    with pytest.raises(IssuerError) as missing:
        client.register("ops@example.test", True)
    assert missing.value.problem_type == ERR + "externalAccountRequired"
    assert "externalAccountBinding" in missing.value.detail
    assert not isinstance(missing.value, TransientIssuerError)

    with pytest.raises(IssuerError) as wrong:
        client.register("ops@example.test", True, EAB_KID, WRONG_HMAC)
    assert wrong.value.problem_type == ERR + "unauthorized"
    assert "external account binding" in wrong.value.detail
    assert WRONG_HMAC not in repr(wrong.value.args)
    restored = pickle.loads(pickle.dumps(wrong.value))
    assert (restored.detail, restored.problem_type) == (wrong.value.detail, ERR + "unauthorized")

    url = client.register("ops@example.test", True, EAB_KID, EAB_HMAC)
    assert "/my-account/" in url
    assert EAB_HMAC not in url


# ---------------------------------------------------------------------------- issuance


def test_issue_name_and_wildcard(client: AcmeClient, dns: ChallTestSrv, pebble: Pebble) -> None:
    domain = fresh_domain()
    names = [domain, f"*.{domain}"]
    started = time.perf_counter()
    chain, csr_pem = issue(client, dns, names)
    elapsed = time.perf_counter() - started
    print(f"\nsingle issuance (name + wildcard, 2 authorizations): {elapsed * 1000:.0f} ms")
    check_chain(chain, names, csr_pem, pebble.root_pem())


def test_challenges_of_name_and_wildcard(client: AcmeClient) -> None:
    domain = fresh_domain()
    csr_pem, _ = make_csr([domain, f"*.{domain}"])
    order = client.new_order(csr_pem)
    assert order.status == "pending"
    assert sorted(order.identifiers) == sorted([domain, f"*.{domain}"])
    assert len(order.authorization_urls) == 2
    # Pebble lists identifiers and authorizations in a new order on every read; the
    # client's values are sorted, so a retried step sees the same order.
    for _ in range(5):
        assert client.get_order(order.url) == order
    challenges = client.dns01_challenges(order)
    assert {(c.identifier, c.wildcard) for c in challenges} == {(domain, False), (domain, True)}
    assert {c.txt_name for c in challenges} == {f"_acme-challenge.{domain}"}
    assert len({c.txt_value for c in challenges}) == 2, "two values share one TXT name"
    assert {c.requested_name for c in challenges} == {domain, f"*.{domain}"}
    assert all(c.needs_answer for c in challenges)
    for value in (order, *challenges):
        assert pickle.loads(pickle.dumps(value)) == value


def test_resume_from_stored_order_url(
    pebble: Pebble, tls: TlsFiles, account: tuple[JWK, str], dns: ChallTestSrv
) -> None:
    key, account_url = account
    names = [fresh_domain()]
    csr_pem, _ = make_csr(names)
    first = AcmeClient(pebble.directory_url, key, account_url=account_url, ca_bundle_pem=tls.ca_pem)
    stored = pickle.dumps(first.new_order(csr_pem))  # what the workflow checkpointed

    # A different worker (fresh client, fresh session) resumes from the stored URL only.
    order_url = pickle.loads(stored).url
    second = AcmeClient(
        pebble.directory_url, key, account_url=account_url, ca_bundle_pem=tls.ca_pem
    )
    order = second.get_order(order_url)
    assert order == pickle.loads(stored)
    challenges = second.dns01_challenges(order)
    publish(dns, challenges)
    try:
        for ch in challenges:
            assert ch.challenge_url is not None
            second.answer_challenge(ch.challenge_url)
            second.answer_challenge(ch.challenge_url)  # a retried step answers again
        for ch in challenges:
            second.wait_authorization(ch.authz_url, timeout=TIMEOUT)
            second.wait_authorization(ch.authz_url, timeout=TIMEOUT)
        # Answering a challenge that is already valid is still fine.
        for ch in challenges:
            assert ch.challenge_url is not None
            second.answer_challenge(ch.challenge_url)
        assert second.get_order(order_url).status == "ready"
        assert [c.authz_status for c in second.dns01_challenges(order)] == ["valid"] * len(names)
        assert not any(c.needs_answer for c in second.dns01_challenges(order))
        chain = second.finalize(order_url, csr_pem, timeout=TIMEOUT)
    finally:
        unpublish(dns, challenges)
    check_chain(chain, names, csr_pem, pebble.root_pem())
    final = first.get_order(order_url)
    assert final.status == "valid"
    assert final.certificate_url is not None


def test_finalize_is_idempotent(client: AcmeClient, dns: ChallTestSrv) -> None:
    names = [fresh_domain()]
    csr_pem, _ = make_csr(names)
    order = client.new_order(csr_pem)
    challenges = client.dns01_challenges(order)
    publish(dns, challenges)
    try:
        for ch in challenges:
            assert ch.challenge_url is not None
            client.answer_challenge(ch.challenge_url)
            client.wait_authorization(ch.authz_url, timeout=TIMEOUT)
    finally:
        unpublish(dns, challenges)
    ready = client.get_order(order.url)
    assert ready.status == "ready"
    chain = client.finalize(ready, csr_pem, timeout=TIMEOUT)
    # Twice more: from the stale "ready" snapshot (the CA answers orderNotReady, the client
    # re-reads the order) and from the URL. Neither finalizes again.
    assert client.finalize(ready, csr_pem, timeout=TIMEOUT) == chain
    assert client.finalize(order.url, csr_pem, timeout=TIMEOUT) == chain


def test_wrong_txt_makes_the_authorization_invalid(client: AcmeClient, dns: ChallTestSrv) -> None:
    names = [fresh_domain()]
    csr_pem, _ = make_csr(names)
    order = client.new_order(csr_pem)
    [challenge] = client.dns01_challenges(order)
    assert challenge.challenge_url is not None
    dns.set_txt(challenge.txt_name, "not-the-key-authorization")
    try:
        client.answer_challenge(challenge.challenge_url)
        with pytest.raises(IssuerError) as caught:
            client.wait_authorization(challenge.authz_url, timeout=TIMEOUT)
    finally:
        dns.clear_txt(challenge.txt_name)
    error = caught.value
    assert not isinstance(error, TransientIssuerError)
    assert error.problem_type == ERR + "unauthorized"
    # Pebble 2.4's words; Let's Encrypt says "Incorrect TXT record ... found at ...".
    assert "Correct value not found for DNS challenge" in error.detail
    assert names[0] in error.detail
    assert pickle.loads(pickle.dumps(error)).detail == error.detail

    # Answering again (a retried step) is harmless; the order is now invalid for good.
    client.answer_challenge(challenge.challenge_url)
    assert client.get_order(order.url).status == "invalid"
    with pytest.raises(IssuerError) as final:
        client.finalize(order, csr_pem, timeout=TIMEOUT)
    assert final.value.problem_type == ERR + "unauthorized"
    invalid = client.get_order(order.url)
    assert invalid.error_type == ERR + "unauthorized"


def test_failed_wildcard_authorization_names_the_wildcard(
    client: AcmeClient, dns: ChallTestSrv
) -> None:
    domain = fresh_domain()
    csr_pem, _ = make_csr([f"*.{domain}"])
    order = client.new_order(csr_pem)
    [challenge] = client.dns01_challenges(order)
    assert challenge.wildcard and challenge.challenge_url is not None
    dns.set_txt(challenge.txt_name, "not-the-key-authorization")
    try:
        client.answer_challenge(challenge.challenge_url)
        with pytest.raises(IssuerError) as caught:
            client.wait_authorization(challenge.authz_url, timeout=TIMEOUT)
    finally:
        dns.clear_txt(challenge.txt_name)
    assert caught.value.detail.startswith(f"authorization for *.{domain} failed:")


def test_wait_authorization_gives_up_at_the_deadline(client: AcmeClient) -> None:
    csr_pem, _ = make_csr([fresh_domain()])
    order = client.new_order(csr_pem)
    [challenge] = client.dns01_challenges(order)
    started = time.monotonic()
    with pytest.raises(IssuerError, match=r"did not complete within 0\.3 s"):
        client.wait_authorization(challenge.authz_url, timeout=0.3)
    assert time.monotonic() - started < 5


def test_finalize_refuses_an_order_with_pending_authorizations(client: AcmeClient) -> None:
    csr_pem, _ = make_csr([fresh_domain()])
    order = client.new_order(csr_pem)
    with pytest.raises(IssuerError) as caught:
        client.finalize(order, csr_pem, timeout=1)
    assert caught.value.problem_type == ERR + "orderNotReady"


def test_rejected_identifier_is_final(client: AcmeClient) -> None:
    csr_pem, _ = make_csr([f"www.{BLOCKED}"])
    with pytest.raises(IssuerError) as caught:
        client.new_order(csr_pem)
    assert not isinstance(caught.value, TransientIssuerError)
    assert caught.value.problem_type == ERR + "rejectedIdentifier"
    assert BLOCKED in caught.value.detail


def test_malformed_identifier_is_final(client: AcmeClient) -> None:
    csr_pem, _ = make_csr([f"*.*.{fresh_domain()}"])
    with pytest.raises(IssuerError) as caught:
        client.new_order(csr_pem)
    assert not isinstance(caught.value, TransientIssuerError)
    assert caught.value.problem_type == ERR + "malformed"
    assert "wildcard" in caught.value.detail


# ---------------------------------------------------------------------------- revocation


def test_revoke(client: AcmeClient, dns: ChallTestSrv, pebble: Pebble) -> None:
    names = [fresh_domain()]
    chain, _ = issue(client, dns, names)
    serial = x509.load_pem_x509_certificate(chain.encode()).serial_number
    assert pebble.cert_status(serial)["Status"] == "Valid"
    client.revoke(chain, 4)  # superseded
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked"
    assert status["Reason"] == 4
    client.revoke(chain, 4)  # already revoked: Pebble answers alreadyRevoked, which is success


# ---------------------------------------------------------------------------- robustness


def test_issuance_survives_half_the_nonces_rejected(
    pebble_bad_nonces: Pebble, tls: TlsFiles, dns: ChallTestSrv
) -> None:
    key, _ = generate_account_key()
    client = AcmeClient(pebble_bad_nonces.directory_url, key, ca_bundle_pem=tls.ca_pem)
    client.register(None, True)
    for _ in range(3):
        domain = fresh_domain()
        chain, csr_pem = issue(client, dns, [domain, f"*.{domain}"])
        check_chain(chain, [domain, f"*.{domain}"], csr_pem, pebble_bad_nonces.root_pem())
    print(f"\nbadNonce answers retried over 3 issuances: {client.bad_nonce_retries}")
    assert client.bad_nonce_retries > 0


def test_shared_clients_issue_concurrently(
    pebble: Pebble, tls: TlsFiles, account: tuple[JWK, str], dns: ChallTestSrv
) -> None:
    key, account_url = account
    clear_client_cache()
    try:
        shared = get_client(
            pebble.directory_url, key, account_url=account_url, ca_bundle_pem=tls.ca_pem
        )
        assert (
            get_client(pebble.directory_url, key, account_url=account_url, ca_bundle_pem=tls.ca_pem)
            is shared
        )
        count, threads = 16, 4
        errors: list[BaseException] = []
        lock = threading.Lock()

        def one(_: int) -> None:
            try:
                client = get_client(
                    pebble.directory_url, key, account_url=account_url, ca_bundle_pem=tls.ca_pem
                )
                issue(client, dns, [fresh_domain()])
            except BaseException as exc:  # collected and re-raised below
                with lock:
                    errors.append(exc)

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(count)))
        elapsed = time.perf_counter() - started
        assert not errors, errors
        print(
            f"\n{count} issuances on {threads} threads, one shared client: "
            f"{elapsed * 1000 / count:.0f} ms per certificate ({count * 60 / elapsed:.0f}/min)"
        )
    finally:
        clear_client_cache()


def test_measure_single_issuance(client: AcmeClient, dns: ChallTestSrv) -> None:
    """Not a timed assertion: prints what one certificate costs end to end."""
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        issue(client, dns, [fresh_domain()])
        timings.append(time.perf_counter() - started)
    ms = sorted(t * 1000 for t in timings)
    print(
        f"\nsingle issuance, one name, registered account, warm session (10 runs): "
        f"median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms"
    )


def test_values_are_plain(client: AcmeClient) -> None:
    csr_pem, _ = make_csr([fresh_domain()])
    order = client.new_order(csr_pem)
    for field in dataclasses.fields(AcmeOrder):
        value = getattr(order, field.name)
        assert value is None or isinstance(value, str | tuple)
