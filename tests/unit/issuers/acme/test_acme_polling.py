"""Polling, finalization, challenge answers and revocation, driven by a scripted ACME stub
and a fake clock (the sleeps are recorded, never slept)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).parent))

from _acme_stub_server import Reply, StubCA, problem
from tests.fakes import FakeClock

from certautopilot.errors import InvalidInput, IssuerError, TransientIssuerError
from certautopilot.issuers.acme.client import AcmeClient
from certautopilot.issuers.acme.keys import generate_account_key, key_authorization_digest
from certautopilot.issuers.acme.types import AcmeOrder

ERR = "urn:ietf:params:acme:error:"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


@pytest.fixture
def client(ca: StubCA, clock: FakeClock) -> AcmeClient:
    key, _ = generate_account_key()
    return AcmeClient(
        ca.directory_url,
        key,
        account_url=ca.url("/acct/1"),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )


def authz(
    ca: StubCA,
    status: str,
    *,
    challenge_status: str = "pending",
    error: dict[str, Any] | None = None,
    types: tuple[str, ...] = ("http-01", "dns-01"),
    headers: dict[str, str] | None = None,
    wildcard: bool = False,
) -> Reply:
    challenges = []
    for n, typ in enumerate(types):
        chall: dict[str, Any] = {
            "type": typ,
            "url": ca.url(f"/chall/{n}"),
            "token": TOKEN,
            "status": challenge_status,
        }
        if error is not None and typ == "dns-01":
            chall["error"] = error
        challenges.append(chall)
    body: dict[str, Any] = {
        "status": status,
        "identifier": {"type": "dns", "value": "a.example.test"},
        "challenges": challenges,
    }
    if wildcard:
        body["wildcard"] = True
    return Reply(200, body, dict(headers or {}))


def order(ca: StubCA, status: str, headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    body: dict[str, Any] = {
        "status": status,
        "identifiers": [{"type": "dns", "value": "a.example.test"}],
        "authorizations": [ca.url("/authz/1")],
        "finalize": ca.url("/finalize/1"),
    }
    if status == "valid":
        body["certificate"] = ca.url("/cert/1")
    body.update(extra)
    return Reply(200, body, dict(headers or {}))


def csr_and_chain(matching: bool = True) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.test")]), False)
        .sign(key, hashes.SHA256())
    )
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = key if matching else ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "stub issuer")])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.test")]), False)
        .sign(issuer_key, hashes.SHA256())
    )
    issuer = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(issuer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, issuer))
    return csr.public_bytes(serialization.Encoding.PEM), chain.decode()


def cert_reply(chain: str) -> Reply:
    return Reply(200, chain, content_type="application/pem-certificate-chain")


# ---------------------------------------------------------------------------- challenges


def test_dns01_challenges_compute_the_txt_value(ca: StubCA, client: AcmeClient) -> None:
    ca.script("/authz/1", authz(ca, "pending", wildcard=True))
    ca.script("/authz/2", authz(ca, "valid", challenge_status="valid", types=("http-01",)))
    snapshot = AcmeOrder(
        url=ca.url("/order/1"),
        status="pending",
        identifiers=("*.a.example.test", "a.example.test"),
        authorization_urls=(ca.url("/authz/1"), ca.url("/authz/2")),
        finalize_url=ca.url("/finalize/1"),
    )
    pending, reused = client.dns01_challenges(snapshot)
    assert pending.wildcard and pending.requested_name == "*.a.example.test"
    assert pending.txt_name == "_acme-challenge.a.example.test"
    assert pending.challenge_url == ca.url("/chall/1")
    assert pending.txt_value == key_authorization_digest(TOKEN, client.account_key_thumbprint())
    assert pending.needs_answer
    # A reused authorization validated by another method: listed, nothing to publish.
    assert reused.authz_status == "valid" and not reused.needs_answer
    assert reused.challenge_url is None and reused.txt_value is None


def test_pending_authorization_without_dns01_is_an_error(ca: StubCA, client: AcmeClient) -> None:
    ca.script("/authz/1", authz(ca, "pending", types=("http-01",)))
    with pytest.raises(IssuerError, match="no dns-01"):
        client.get_authorization(ca.url("/authz/1"))


def test_answer_is_idempotent(ca: StubCA, client: AcmeClient) -> None:
    ca.script(
        "/chall/1",
        problem("malformed", "Cannot update challenge with status valid, only status pending"),
        Reply(
            200, {"type": "dns-01", "url": ca.url("/chall/1"), "token": TOKEN, "status": "valid"}
        ),
    )
    client.answer_challenge(ca.url("/chall/1"))
    answer, read = ca.requests_to("/chall/1", "POST")
    assert answer.payload == b"{}" and read.payload == b""


def test_answer_error_on_a_pending_challenge_is_raised(ca: StubCA, client: AcmeClient) -> None:
    ca.script(
        "/chall/1",
        problem("unauthorized", "not your challenge", status=403),
        Reply(200, {"type": "dns-01", "url": ca.url("/chall/1"), "token": TOKEN}),
    )
    with pytest.raises(IssuerError) as caught:
        client.answer_challenge(ca.url("/chall/1"))
    assert caught.value.problem_type == ERR + "unauthorized"


# ---------------------------------------------------------------------------- wait_authorization


def test_wait_polls_with_a_growing_interval(
    ca: StubCA, client: AcmeClient, clock: FakeClock
) -> None:
    ca.script(
        "/authz/1",
        authz(ca, "pending", challenge_status="processing"),
        authz(ca, "pending", challenge_status="processing"),
        authz(ca, "pending", challenge_status="processing"),
        authz(ca, "valid", challenge_status="valid"),
    )
    client.wait_authorization(ca.url("/authz/1"), timeout=30)
    assert clock.sleeps == pytest.approx([0.02, 0.03, 0.045])


def test_wait_follows_retry_after(ca: StubCA, client: AcmeClient, clock: FakeClock) -> None:
    ca.script(
        "/authz/1",
        authz(ca, "pending", headers={"Retry-After": "3"}),
        authz(ca, "valid", challenge_status="valid"),
    )
    client.wait_authorization(ca.url("/authz/1"), timeout=30)
    assert clock.sleeps == [3.0]


def test_wait_stops_at_the_deadline(ca: StubCA, client: AcmeClient, clock: FakeClock) -> None:
    ca.script("/authz/1", authz(ca, "pending"))
    with pytest.raises(IssuerError, match="did not complete within 5 s") as caught:
        client.wait_authorization(ca.url("/authz/1"), timeout=5)
    assert type(caught.value) is IssuerError
    assert sum(clock.sleeps) == pytest.approx(5.0)
    assert max(clock.sleeps) <= 1.0
    assert clock.sleeps[:4] == pytest.approx([0.02, 0.03, 0.045, 0.0675])
    assert len(ca.requests_to("/authz/1")) == len(clock.sleeps) + 1


def test_wait_never_sleeps_past_the_deadline(
    ca: StubCA, client: AcmeClient, clock: FakeClock
) -> None:
    ca.script("/authz/1", authz(ca, "pending", headers={"Retry-After": "600"}))
    with pytest.raises(IssuerError):
        client.wait_authorization(ca.url("/authz/1"), timeout=2)
    assert clock.sleeps == [2.0]


def test_invalid_authorization_carries_the_cas_words(ca: StubCA, client: AcmeClient) -> None:
    detail = 'Incorrect TXT record "x" found at _acme-challenge.a.example.test'
    ca.script(
        "/authz/1",
        authz(
            ca,
            "invalid",
            challenge_status="invalid",
            error={"type": ERR + "unauthorized", "detail": detail, "status": 403},
        ),
    )
    with pytest.raises(IssuerError) as caught:
        client.wait_authorization(ca.url("/authz/1"), timeout=5)
    assert type(caught.value) is IssuerError
    assert caught.value.problem_type == ERR + "unauthorized"
    assert detail in caught.value.detail
    assert "a.example.test" in caught.value.detail


def test_deactivated_authorization_is_final(ca: StubCA, client: AcmeClient) -> None:
    ca.script("/authz/1", authz(ca, "deactivated"))
    with pytest.raises(IssuerError, match="deactivated"):
        client.wait_authorization(ca.url("/authz/1"), timeout=5)


# ---------------------------------------------------------------------------- finalize


def test_finalize_posts_polls_and_downloads(
    ca: StubCA, client: AcmeClient, clock: FakeClock
) -> None:
    csr, chain = csr_and_chain()
    ca.script(
        "/order/1",
        order(ca, "ready"),
        order(ca, "processing"),
        order(ca, "valid"),
    )
    ca.script("/finalize/1", order(ca, "processing", headers={"Retry-After": "1"}))
    ca.script("/cert/1", cert_reply(chain))
    assert client.finalize(ca.url("/order/1"), csr, timeout=30) == chain
    assert clock.sleeps[0] == 1.0
    [posted] = ca.requests_to("/finalize/1")
    assert posted.payload is not None and b'"csr"' in posted.payload


def test_finalize_does_not_finalize_twice(ca: StubCA, client: AcmeClient) -> None:
    csr, chain = csr_and_chain()
    ca.script("/order/1", order(ca, "valid"))
    ca.script("/cert/1", cert_reply(chain))
    assert client.finalize(ca.url("/order/1"), csr, timeout=30) == chain
    assert client.finalize(ca.url("/order/1"), csr, timeout=30) == chain
    assert ca.requests_to("/finalize/1") == []


def test_finalize_from_a_stale_ready_snapshot(ca: StubCA, client: AcmeClient) -> None:
    csr, chain = csr_and_chain()
    ca.script(
        "/finalize/1", problem("orderNotReady", 'Order\'s status ("valid") is not ready', 403)
    )
    ca.script("/order/1", order(ca, "valid"))
    ca.script("/cert/1", cert_reply(chain))
    stale = AcmeOrder(
        url=ca.url("/order/1"),
        status="ready",
        identifiers=("a.example.test",),
        authorization_urls=(ca.url("/authz/1"),),
        finalize_url=ca.url("/finalize/1"),
    )
    assert client.finalize(stale, csr, timeout=30) == chain
    assert len(ca.requests_to("/finalize/1")) == 1


def test_finalize_reports_an_invalid_order(ca: StubCA, client: AcmeClient) -> None:
    csr, _ = csr_and_chain()
    ca.script(
        "/order/1",
        order(ca, "invalid", error={"type": ERR + "badCSR", "detail": "key too weak"}),
    )
    with pytest.raises(IssuerError) as caught:
        client.finalize(ca.url("/order/1"), csr, timeout=30)
    assert caught.value.problem_type == ERR + "badCSR"
    assert "key too weak" in caught.value.detail


def test_finalize_refuses_a_pending_order(ca: StubCA, client: AcmeClient) -> None:
    csr, _ = csr_and_chain()
    ca.script("/order/1", order(ca, "pending"))
    with pytest.raises(IssuerError) as caught:
        client.finalize(ca.url("/order/1"), csr, timeout=30)
    assert caught.value.problem_type == ERR + "orderNotReady"


def test_finalize_gives_up_at_the_deadline(
    ca: StubCA, client: AcmeClient, clock: FakeClock
) -> None:
    csr, _ = csr_and_chain()
    ca.script("/order/1", order(ca, "processing"))
    with pytest.raises(IssuerError, match="not issued within 3 s"):
        client.finalize(ca.url("/order/1"), csr, timeout=3)
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_finalize_checks_the_certificate_matches_the_csr(ca: StubCA, client: AcmeClient) -> None:
    csr, chain = csr_and_chain(matching=False)
    ca.script("/order/1", order(ca, "valid"))
    ca.script("/cert/1", cert_reply(chain))
    with pytest.raises(IssuerError, match="public key"):
        client.finalize(ca.url("/order/1"), csr, timeout=30)


def test_finalize_rejects_garbage_instead_of_a_chain(ca: StubCA, client: AcmeClient) -> None:
    csr, _ = csr_and_chain()
    ca.script("/order/1", order(ca, "valid"))
    ca.script("/cert/1", Reply(200, "<html>hello</html>", content_type="text/html"))
    with pytest.raises(IssuerError, match="no PEM certificate chain"):
        client.finalize(ca.url("/order/1"), csr, timeout=30)


# ---------------------------------------------------------------------------- revoke


def test_revoke(ca: StubCA, client: AcmeClient) -> None:
    _, chain = csr_and_chain()
    ca.script("/revoke", Reply(200), problem("alreadyRevoked", "Certificate already revoked"))
    client.revoke(chain, 1)
    client.revoke(chain, 1)  # already revoked: success
    first, _ = ca.requests_to("/revoke")
    assert first.kid == ca.url("/acct/1")
    assert first.payload is not None and b'"reason": 1' in first.payload


def test_revoke_failures(ca: StubCA, client: AcmeClient) -> None:
    _, chain = csr_and_chain()
    with pytest.raises(InvalidInput):
        client.revoke(chain, 7)
    with pytest.raises(InvalidInput):
        client.revoke("not a certificate", 1)
    ca.script("/revoke", problem("unauthorized", "not your certificate", 403))
    with pytest.raises(IssuerError) as caught:
        client.revoke(chain, 1)
    assert caught.value.problem_type == ERR + "unauthorized"
    ca.script("/revoke", problem("serverInternal", "try later", 503, {"Retry-After": "900"}))
    with pytest.raises(TransientIssuerError) as later:
        client.revoke(chain, 1)
    assert later.value.retry_after == 900.0
