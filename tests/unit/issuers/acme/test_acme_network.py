"""Retries, nonces, Retry-After and error translation, driven by a scripted ACME stub."""

from __future__ import annotations

import datetime as dt
import email.utils
import pickle
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).parent))

from _acme_stub_server import Reply, StubCA, problem, stub_ca
from tests.fakes import FakeClock

from certautopilot.errors import InvalidInput, IssuerError, TransientIssuerError
from certautopilot.issuers.acme.client import AcmeClient, clear_client_cache, get_client
from certautopilot.issuers.acme.keys import generate_account_key
from certautopilot.issuers.acme.network import AcmeTransport, parse_retry_after

ERR = "urn:ietf:params:acme:error:"


def make_client(ca: StubCA, clock: FakeClock, **kw: object) -> AcmeClient:
    key, _ = generate_account_key()
    return AcmeClient(
        ca.directory_url,
        key,
        account_url=ca.url("/acct/1"),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        **kw,
    )


def csr_pem(names: tuple[str, ...] = ("a.example.test",)) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def order_reply(ca: StubCA, status: str = "pending", **extra: object) -> Reply:
    body = {
        "status": status,
        "identifiers": [{"type": "dns", "value": "a.example.test"}],
        "authorizations": [ca.url("/authz/1")],
        "finalize": ca.url("/finalize/1"),
    }
    body.update(extra)
    return Reply(201, body, {"Location": ca.url("/order/1")})


# ---------------------------------------------------------------------------- Retry-After


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_060, usegmt=True)
    assert parse_retry_after(date, now=lambda: 1_000_000.0) == pytest.approx(60.0)
    past = email.utils.formatdate(1_000_000, usegmt=True)
    assert parse_retry_after(past, now=lambda: 1_000_100.0) == 0.0


# ---------------------------------------------------------------------------- nonces


def test_bad_nonce_is_retried_with_the_nonce_of_the_error(ca: StubCA, clock: FakeClock) -> None:
    ca.script(
        "/order",
        problem("badNonce", "JWS has an invalid anti-replay nonce"),
        problem("badNonce", "JWS has an invalid anti-replay nonce"),
        order_reply(ca),
    )
    client = make_client(ca, clock)
    order = client.new_order(csr_pem())
    assert order.url == ca.url("/order/1")
    assert order.authorization_urls == (ca.url("/authz/1"),)
    posts = ca.requests_to("/order", "POST")
    assert len(posts) == 3
    # Only the first nonce came from newNonce; the retries used the error answers' nonces.
    assert len(ca.requests_to("/nonce", "HEAD")) == 1
    assert posts[1].nonce != posts[0].nonce
    assert posts[1].nonce in ca.issued_nonces and posts[2].nonce in ca.issued_nonces
    assert all(p.kid == ca.url("/acct/1") and not p.jwk for p in posts)
    assert client.bad_nonce_retries == 2
    assert clock.sleeps == []


def test_bad_nonce_retries_are_bounded(ca: StubCA, clock: FakeClock) -> None:
    ca.script("/order", problem("badNonce", "bad nonce"))
    client = make_client(ca, clock, max_bad_nonce=3)
    with pytest.raises(TransientIssuerError) as caught:
        client.new_order(csr_pem())
    assert caught.value.problem_type == ERR + "badNonce"
    assert len(ca.requests_to("/order", "POST")) == 4


def test_successful_answers_feed_the_nonce_pool(ca: StubCA, clock: FakeClock) -> None:
    ca.script("/order/1", order_reply(ca))
    client = make_client(ca, clock)
    for _ in range(5):
        client.get_order(ca.url("/order/1"))
    assert len(ca.requests_to("/nonce", "HEAD")) == 1


# ---------------------------------------------------------------------------- Retry-After


def test_short_retry_after_is_slept_and_retried(ca: StubCA, clock: FakeClock) -> None:
    ca.script(
        "/order",
        problem("serverInternal", "busy", status=503, headers={"Retry-After": "2"}),
        order_reply(ca),
    )
    client = make_client(ca, clock)
    assert client.new_order(csr_pem()).status == "pending"
    assert clock.sleeps == [2.0]
    assert client.transient_retries == 1


def test_long_retry_after_becomes_transient_error(ca: StubCA, clock: FakeClock) -> None:
    ca.script(
        "/order",
        problem("rateLimited", "too many new orders", status=429, headers={"Retry-After": "3600"}),
    )
    client = make_client(ca, clock)
    with pytest.raises(TransientIssuerError) as caught:
        client.new_order(csr_pem())
    error = caught.value
    assert error.retry_after == 3600.0
    assert error.problem_type == ERR + "rateLimited"
    assert error.detail == "too many new orders"
    assert clock.sleeps == []
    assert len(ca.requests_to("/order", "POST")) == 1
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is TransientIssuerError
    assert (restored.detail, restored.problem_type, restored.retry_after) == (
        error.detail,
        error.problem_type,
        error.retry_after,
    )


def test_retry_after_as_http_date(ca: StubCA, clock: FakeClock) -> None:
    when = email.utils.formatdate(time.time() + 7200, usegmt=True)
    ca.script("/order", Reply(503, "maintenance", {"Retry-After": when}))
    client = make_client(ca, clock)
    with pytest.raises(TransientIssuerError) as caught:
        client.new_order(csr_pem())
    assert caught.value.retry_after == pytest.approx(7200, abs=5)
    assert "HTTP 503" in caught.value.detail and "maintenance" in caught.value.detail


def test_rate_limit_without_hint_is_not_hammered(ca: StubCA, clock: FakeClock) -> None:
    ca.script("/order", problem("rateLimited", "slow down", status=429))
    client = make_client(ca, clock)
    with pytest.raises(TransientIssuerError) as caught:
        client.new_order(csr_pem())
    assert caught.value.retry_after is None
    assert len(ca.requests_to("/order", "POST")) == 1


def test_server_errors_back_off_then_give_up(ca: StubCA, clock: FakeClock) -> None:
    ca.script("/order", problem("serverInternal", "database on fire", status=500))
    client = make_client(ca, clock, max_attempts=5)
    with pytest.raises(TransientIssuerError) as caught:
        client.new_order(csr_pem())
    assert caught.value.problem_type == ERR + "serverInternal"
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0]
    assert len(ca.requests_to("/order", "POST")) == 5


def test_non_json_bad_gateway_is_transient(ca: StubCA, clock: FakeClock) -> None:
    ca.script("/order", Reply(502, "<html>bad gateway</html>", content_type="text/html"))
    client = make_client(ca, clock, max_attempts=2)
    with pytest.raises(TransientIssuerError) as caught:
        client.new_order(csr_pem())
    assert "HTTP 502" in caught.value.detail
    assert caught.value.problem_type is None


# ---------------------------------------------------------------------------- final errors


def test_client_errors_are_final_and_not_retried(ca: StubCA, clock: FakeClock) -> None:
    ca.script(
        "/order",
        problem(
            "rejectedIdentifier",
            "Error creating new order :: Cannot issue for 2 names",
            status=400,
            subproblems=[
                {
                    "type": ERR + "rejectedIdentifier",
                    "detail": "Domain name is on the blocklist",
                    "identifier": {"type": "dns", "value": "a.example.test"},
                }
            ],
        ),
    )
    client = make_client(ca, clock)
    with pytest.raises(IssuerError) as caught:
        client.new_order(csr_pem())
    error = caught.value
    assert type(error) is IssuerError
    assert error.problem_type == ERR + "rejectedIdentifier"
    assert "Cannot issue for 2 names" in error.detail
    assert "a.example.test: Domain name is on the blocklist" in error.detail
    assert isinstance(error.__cause__, Exception)
    assert len(ca.requests_to("/order", "POST")) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("code", ["malformed", "unauthorized", "badCSR", "caa"])
def test_final_problem_codes(ca: StubCA, clock: FakeClock, code: str) -> None:
    ca.script("/order", problem(code, f"the CA says {code}", status=403))
    with pytest.raises(IssuerError) as caught:
        make_client(ca, clock).new_order(csr_pem())
    assert type(caught.value) is IssuerError
    assert caught.value.problem_type == ERR + code


def test_connection_refused_is_retried_then_transient(clock: FakeClock) -> None:
    with stub_ca() as gone:
        url = gone.directory_url
    key, _ = generate_account_key()
    client = AcmeClient(url, key, sleep=clock.sleep, monotonic=clock.monotonic, max_attempts=3)
    with pytest.raises(TransientIssuerError) as caught:
        client.register(None, True)
    assert "failed after 3 attempts" in caught.value.detail
    assert clock.sleeps == [0.25, 0.5]
    pickle.loads(pickle.dumps(caught.value))


def test_no_account_url_is_an_issuer_error(ca: StubCA, clock: FakeClock) -> None:
    key, _ = generate_account_key()
    client = AcmeClient(ca.directory_url, key)
    with pytest.raises(IssuerError, match="register"):
        client.get_order(ca.url("/order/1"))


def test_bad_csr_is_invalid_input(ca: StubCA, clock: FakeClock) -> None:
    with pytest.raises(InvalidInput):
        make_client(ca, clock).new_order(b"not a csr")


# ---------------------------------------------------------------------------- accounts


def test_register_signs_with_jwk_and_sends_eab(ca: StubCA, clock: FakeClock) -> None:
    ca.script("/acct", Reply(201, {"status": "valid"}, {"Location": ca.url("/acct/7")}))
    key, _ = generate_account_key()
    client = AcmeClient(ca.directory_url, key, sleep=clock.sleep)
    hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    url = client.register("ops@example.test", True, "kid-1", hmac)
    assert url == ca.url("/acct/7") == client.account_url
    [seen] = ca.requests_to("/acct", "POST")
    assert seen.jwk and seen.kid is None
    assert seen.payload is not None
    assert b"externalAccountBinding" in seen.payload and b"mailto:ops@example.test" in seen.payload
    assert hmac.encode() not in seen.payload


def test_eab_needs_both_parts_and_valid_base64(ca: StubCA, clock: FakeClock) -> None:
    client = make_client(ca, clock)
    with pytest.raises(InvalidInput):
        client.register(None, True, "kid-1", None)
    with pytest.raises(InvalidInput) as caught:
        client.register(None, True, "kid-1", "not*base64")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_find_account(ca: StubCA, clock: FakeClock) -> None:
    ca.script(
        "/acct",
        problem("accountDoesNotExist", "no account for this key"),
        Reply(200, {"status": "valid"}, {"Location": ca.url("/acct/3")}),
    )
    key, _ = generate_account_key()
    client = AcmeClient(ca.directory_url, key, sleep=clock.sleep)
    assert client.find_account() is None
    assert client.find_account() == ca.url("/acct/3")
    assert b'"onlyReturnExisting": true' in (ca.requests_to("/acct")[0].payload or b"")


# ---------------------------------------------------------------------------- directory & cache


def test_directory_is_fetched_once_and_answers_lookups(ca: StubCA, clock: FakeClock) -> None:
    client = make_client(ca, clock)
    assert client.directory_has("keyChange")
    assert client.directory_has("profiles")
    assert not client.directory_has("renewalInfo")
    assert client.terms_of_service() == ca.url("/tos")
    assert client.external_account_required() is False
    assert len(ca.requests_to("/dir", "GET")) == 1


def test_transport_ignores_environment_and_pins_the_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bundle")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime.now(dt.UTC))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    bundle = cert.public_bytes(serialization.Encoding.PEM).decode()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "elsewhere.pem"))
    transport = AcmeTransport("https://ca.example.test/dir", ca_bundle_pem=bundle)
    assert transport.session.trust_env is False
    assert isinstance(transport.verify, str)
    assert Path(transport.verify).read_text() == bundle
    adapter = transport.session.get_adapter("https://ca.example.test/")
    assert adapter._pool_maxsize == 50
    with pytest.raises(InvalidInput):
        AcmeTransport("https://ca.example.test/dir", ca_bundle_pem="garbage")
    with pytest.raises(InvalidInput):
        AcmeTransport("file:///etc/passwd")


def test_get_client_shares_transport_and_caches_clients(ca: StubCA) -> None:
    clear_client_cache()
    try:
        key_a, _ = generate_account_key()
        key_b, _ = generate_account_key()
        a1 = get_client(ca.directory_url, key_a, account_url=ca.url("/acct/a"))
        a2 = get_client(ca.directory_url, key_a, account_url=ca.url("/acct/a"))
        b = get_client(ca.directory_url, key_b, account_url=ca.url("/acct/b"))
        assert a1 is a2 and a1 is not b
        assert a1.directory_has("newOrder") and b.directory_has("newOrder")
        assert len(ca.requests_to("/dir", "GET")) == 1
    finally:
        clear_client_cache()
