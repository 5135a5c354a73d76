"""Concurrent and repeated requests: each is admitted once, decided by the database.

The requests are truly concurrent: threads, held at a barrier until all of them are
connected, fire at two real ``certautopilot serve --workers 0`` processes on the session's
database (SQLite, and PostgreSQL when ``CERTAUTOPILOT_TEST_DATABASE_URL`` is set), so no lock
inside one process could be what admits exactly one of them. The issuer sits behind a proxy
in front of Pebble that counts the newOrder and revokeCert requests reaching the CA.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from certautopilot.certificates import idempotency, lifecycle
from certautopilot.certificates.models import Certificate, CertificateVersion, IdempotencyKey
from certautopilot.clock import utcnow
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot_lab.info import LabInfo
from certautopilot_lab.tls import tls_files
from tests.conftest import Project, Service, create_project, issue_one
from tests.integration.acme_limit_proxy import LimitProxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def servers(service: Service) -> Iterator[list[str]]:
    """Two API processes (no workers: the session's worker issues) on the same database."""
    procs: list[tuple[subprocess.Popen[bytes], str]] = []
    for n in (1, 2):
        port = _free_port()
        log = open(service.log_dir / f"races-api-{n}.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "certautopilot.cli", "serve", "--workers", "0"]
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            env=service.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, f"http://127.0.0.1:{port}"))
    try:
        for proc, url in procs:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"the API process exited; see {service.log_dir}"
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the API process did not start"
                time.sleep(0.1)
        yield [url for _, url in procs]
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def proxy(lab: LabInfo) -> Iterator[LimitProxy]:
    files = tls_files(lab.ca_bundle_path.parent)
    counting = LimitProxy(lab.acme_port, files.leaf_cert, files.leaf_key)
    try:
        yield counting
    finally:
        counting.close()


@pytest.fixture(scope="module")
def counted(service: Service, lab: LabInfo, proxy: LimitProxy) -> Project:
    """A project whose issuer talks to Pebble through the counting proxy."""
    p = create_project(service, lab, manual_zone=False)
    issuer = service.ok(
        "POST",
        f"/projects/{p.slug}/issuers",
        201,
        json={
            "name": "pebble-counted",
            "kind": "acme",
            "acme": {
                "directory_url": proxy.directory_url,
                "contact_email": "ops@example.test",
                "terms_agreed": True,
                "ca_bundle_pem": lab.ca_bundle_path.read_text(),
            },
        },
    )
    return Project(slug=p.slug, issuer_id=issuer["id"], zone_ids=p.zone_ids)


def fire(
    urls: list[str],
    n: int,
    method: str,
    path: str,
    token: str,
    *,
    headers: dict[str, str] | None = None,
    json: Any = None,
) -> list[httpx.Response]:
    """``n`` requests at once, spread over ``urls``: each thread connects first, then all
    wait at one barrier and send together."""
    barrier = threading.Barrier(n)
    answers: list[httpx.Response | BaseException | None] = [None] * n
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}

    def one(i: int) -> None:
        try:
            with httpx.Client(base_url=urls[i % len(urls)], timeout=120) as client:
                client.get("/healthz")  # the connection is open before the barrier
                barrier.wait(30)
                answers[i] = client.request(method, "/api/v1" + path, headers=sent, json=json)
        except BaseException as exc:  # reported below, in the test's thread
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    out: list[httpx.Response] = []
    for answer in answers:
        if not isinstance(answer, httpx.Response):
            raise AssertionError(f"a request did not complete: {answer!r}")
        out.append(answer)
    return out


def _events(service: Service, p: Project, cid: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in service.timeline(p.slug, cid)["events"] if e["type"] == type_]


def test_ten_renewals_at_once_admit_one(
    service: Service, servers: list[str], counted: Project, proxy: LimitProxy
) -> None:
    p = counted
    cid = issue_one(service, p, f"renew-race-{uuid.uuid4().hex[:6]}.example.test")
    orders_before = proxy.orders
    answers = fire(
        servers, 10, "POST", f"/projects/{p.slug}/certificates/{cid}/renew", service.admin_token
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * 9, [a.text for a in answers]
    for lost in (a for a in answers if a.status_code == 409):
        assert lost.headers["content-type"].startswith("application/problem+json")
        assert "renew" in lost.json()["detail"] or "issued" in lost.json()["detail"]

    body = service.wait_for(p.slug, cid, ("issued", "failed"))
    assert body["status"] == "issued", body["error"]
    versions = service.ok("GET", f"/projects/{p.slug}/certificates/{cid}/versions")
    assert [v["reason"] for v in versions] == ["renew", "issue"]
    assert len(_events(service, p, cid, "cert.renewal_requested")) == 1
    assert len(_events(service, p, cid, "cert.renewed")) == 1
    assert proxy.orders - orders_before == 1  # one ACME order reached the CA


def test_five_revocations_at_once_admit_one(
    service: Service, servers: list[str], counted: Project, proxy: LimitProxy
) -> None:
    p = counted
    cid = issue_one(service, p, f"revoke-race-{uuid.uuid4().hex[:6]}.example.test")
    revocations_before = proxy.revocations
    answers = fire(
        servers,
        5,
        "POST",
        f"/projects/{p.slug}/certificates/{cid}/revoke",
        service.admin_token,
        json={"reason": "keyCompromise"},
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 4, [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200)
    assert won.json()["status"] == "revoked"
    for lost in (a for a in answers if a.status_code == 409):
        assert "revoked" in lost.json()["detail"]

    assert proxy.revocations - revocations_before == 1  # the CA was asked once
    revoked = _events(service, p, cid, "cert.revoked")
    assert len(revoked) == 1 and revoked[0]["detail"]["reason"] == "keyCompromise"
    assert service.ok("GET", f"/projects/{p.slug}/certificates/{cid}")["status"] == "revoked"
    # and one after another, the second is refused the same way
    again = service.call(
        "POST", f"/projects/{p.slug}/certificates/{cid}/revoke", json={"reason": "superseded"}
    )
    assert again.status_code == 409, again.text
    assert proxy.revocations - revocations_before == 1


def test_a_dead_requests_claim_holds_until_it_is_stale(
    service: Service, counted: Project, proxy: LimitProxy
) -> None:
    """A request killed between its claim and its record (while the CA was asked) blocks
    other revocations for REVOCATION_CLAIM_TTL only; then one may revoke again."""
    p = counted
    cid = issue_one(service, p, f"revoke-stale-{uuid.uuid4().hex[:6]}.example.test")
    path = f"/projects/{p.slug}/certificates/{cid}/revoke"

    def claim(at: datetime) -> None:
        engine = make_engine(service.settings)
        try:
            with transaction(make_sessionmaker(engine)) as session:
                cert = session.get(Certificate, cid)
                assert cert is not None and cert.current_version_id is not None
                held = lifecycle.Revocation(cid, cert.current_version_id, "superseded", 4)
                lifecycle.claim_revocation(session, held, now=at)
        finally:
            engine.dispose()

    claim(utcnow())
    refused = service.call("POST", path, json={"reason": "superseded"})
    assert refused.status_code == 409, refused.text
    assert "another request is revoking it" in refused.json()["detail"]

    stale = utcnow() - lifecycle.REVOCATION_CLAIM_TTL - timedelta(seconds=1)
    engine = make_engine(service.settings)
    try:  # the claim as it stands once REVOCATION_CLAIM_TTL has passed
        with transaction(make_sessionmaker(engine)) as session:
            session.execute(
                update(CertificateVersion)
                .where(CertificateVersion.certificate_id == cid)
                .values(revocation_claimed_at=stale)
            )
    finally:
        engine.dispose()
    before = proxy.revocations
    done = service.call("POST", path, json={"reason": "superseded"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "revoked"
    assert proxy.revocations - before == 1
    assert len(_events(service, p, cid, "cert.revoked")) == 1


def test_a_ca_refusal_lets_go_of_the_claim(
    service: Service, counted: Project, proxy: LimitProxy
) -> None:
    p = counted
    cid = issue_one(service, p, f"revoke-refused-{uuid.uuid4().hex[:6]}.example.test")
    path = f"/projects/{p.slug}/certificates/{cid}/revoke"
    proxy.refuse_revocations = True
    try:
        refused = service.call("POST", path, json={"reason": "superseded"})
    finally:
        proxy.refuse_revocations = False
    assert refused.status_code == 502, refused.text
    assert "revocation refused" in refused.json()["detail"]
    assert service.ok("GET", f"/projects/{p.slug}/certificates/{cid}")["status"] == "issued"
    assert _events(service, p, cid, "cert.revoked") == []
    done = service.call("POST", path, json={"reason": "superseded"})  # at once: no claim left
    assert done.status_code == 200, done.text
    assert len(_events(service, p, cid, "cert.revoked")) == 1


# -- Idempotency-Key -------------------------------------------------------------------
def _create(
    service: Service,
    p: Project,
    body: dict[str, Any],
    key: str | bytes | None,
    token: str | None = None,
) -> httpx.Response:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {token or service.admin_token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    response: httpx.Response = service.client.post(
        f"/api/v1/projects/{p.slug}/certificates", json=body, headers=headers
    )
    return response


def _named(service: Service, p: Project, name: str) -> list[dict[str, Any]]:
    listed = service.ok("GET", f"/projects/{p.slug}/certificates", params={"q": name})
    return [c for c in listed["items"] if c["common_name"] == name]


def test_the_same_key_twice_answers_the_first_answer(service: Service, project: Project) -> None:
    p = project
    name = f"idem-{uuid.uuid4().hex[:6]}.example.test"
    body = {"issuer": p.issuer_id, "common_name": name}
    key = str(uuid.uuid4())
    first = _create(service, p, body, key)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    service.wait_for(p.slug, first.json()["id"], ("issued",))

    again = _create(service, p, {"common_name": name, "issuer": p.issuer_id}, key)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()  # the first answer, status "requested" and all
    assert again.headers["idempotent-replayed"] == "true"
    assert len(_named(service, p, name)) == 1

    other = _create(service, p, {**body, "sans": [f"www.{name}"]}, key)
    assert other.status_code == 422, other.text
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert "different request body" in other.json()["errors"][0]["message"]
    assert len(_named(service, p, name)) == 1

    # another caller's key is their own; no key at all creates as before
    email = f"op-{uuid.uuid4().hex[:6]}@example.test"
    operator = service.token_for(email)
    member = {"email": email, "role": "operator"}
    service.ok("POST", f"/projects/{p.slug}/members", 201, json=member)
    theirs = _create(service, p, body, key, token=operator)
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["id"] != first.json()["id"]
    plain = _create(service, p, body, None)
    assert plain.status_code == 202, plain.text
    assert len(_named(service, p, name)) == 3


def test_a_bad_key_is_refused_naming_the_header(service: Service, project: Project) -> None:
    p = project
    name = f"idem-bad-{uuid.uuid4().hex[:6]}.example.test"
    body = {"issuer": p.issuer_id, "common_name": name}
    for bad in ("x" * 256, " ", "caf\u00e9".encode()):
        response = _create(service, p, body, bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["errors"] == [
            {"field": "Idempotency-Key", "message": idempotency.KEY_RULE}
        ]
    assert _create(service, p, body, "k" * 255).status_code == 202
    assert len(_named(service, p, name)) == 1


def test_an_expired_key_is_a_new_request(service: Service, project: Project) -> None:
    p = project
    name = f"idem-old-{uuid.uuid4().hex[:6]}.example.test"
    body = {"issuer": p.issuer_id, "common_name": name}
    key = str(uuid.uuid4())
    first = _create(service, p, body, key)
    assert first.status_code == 202, first.text
    engine = make_engine(service.settings)
    try:  # the key as it stands once CERTAUTOPILOT_IDEMPOTENCY_KEY_HOURS have passed
        with transaction(make_sessionmaker(engine)) as session:
            session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.key == key)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    second = _create(service, p, body, key)
    assert second.status_code == 202, second.text
    assert second.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in second.headers
    assert len(_named(service, p, name)) == 2
    assert _create(service, p, body, key).json()["id"] == second.json()["id"]


def test_concurrent_requests_with_one_key_create_one_certificate(
    service: Service, servers: list[str], project: Project
) -> None:
    p = project
    name = f"idem-race-{uuid.uuid4().hex[:6]}.example.test"
    answers = fire(
        servers,
        6,
        "POST",
        f"/projects/{p.slug}/certificates",
        service.admin_token,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        json={"issuer": p.issuer_id, "common_name": name},
    )
    assert [a.status_code for a in answers] == [202] * 6, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 5
    [cert] = _named(service, p, name)
    body = service.wait_for(p.slug, cert["id"], ("issued", "failed"))
    assert body["status"] == "issued", body["error"]
    assert len(_events(service, p, cert["id"], "cert.requested")) == 1
