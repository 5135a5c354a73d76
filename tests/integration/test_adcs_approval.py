"""AD CS requests that wait for a CA manager: approved across a worker SIGKILL, approved or
denied and picked up at once through check-ca, never waiting past the deadline."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certautopilot_lab.adcs_double import AdcsDouble
from tests.conftest import Service
from tests.integration._adcs_fixture import (
    add_issuer,
    dns_names,
    new_project,
    request_cert,
    verify_chain,
)


@pytest.fixture(scope="module")
def double() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"basic", "ntlm"}) as d:
        yield d


def _awaiting(service: Service, slug: str, cert_id: str) -> dict[str, Any]:
    body = service.wait_for(slug, cert_id, ("awaiting_ca", "failed", "issued"), timeout=60)
    assert body["status"] == "awaiting_ca", body
    action = body["pending_action"]
    assert action["kind"] == "ca_approval"
    assert action["template"] == "WebServerApproval"
    return body


def _ca_requests(double: AdcsDouble, common_name: str) -> int:
    """How many requests the CA received for ``common_name``."""
    count = 0
    for request in list(double.requests.values()):
        csr = x509.load_pem_x509_csr(request.csr_pem.replace("\r\n", "\n").encode())
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        count += bool(cn and cn[0].value == common_name)
    return count


def _events(service: Service, slug: str, cert_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = service.timeline(slug, cert_id)["events"]
    return events


def test_pending_then_approved_across_a_worker_sigkill(
    service: Service, double: AdcsDouble
) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, double, "ntlm", check_interval_seconds=1)
    name = f"approve-{uuid.uuid4().hex[:6]}.corp.test"  # the double serves the whole module
    created = request_cert(service, slug, issuer, name, adcs_template="WebServerApproval")
    body = _awaiting(service, slug, created["id"])
    request_id = body["pending_action"]["request_id"]
    assert request_id in double.pending()
    pending = [
        e for e in _events(service, slug, created["id"]) if e["type"] == "adcs.request.pending"
    ]
    assert pending and pending[0]["detail"]["request_id"] == request_id

    service.kill_worker()  # SIGKILL while the workflow sleeps in recv
    try:
        double.approve(request_id)
        time.sleep(1.5)  # an interval passes with no worker at all
    finally:
        service.start_worker()

    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "issued", body["error"]
    assert body["pending_action"] is None
    fullchain = service.call("GET", f"/projects/{slug}/certificates/{created['id']}/fullchain.pem")
    leaf = verify_chain(fullchain.text, double)
    assert dns_names(leaf) == {name, f"api.{name}"}
    types = [e["type"] for e in _events(service, slug, created["id"])]
    assert types.count("adcs.request.pending") == 1, "no second submission after the restart"
    assert types.index("adcs.request.pending") < types.index("adcs.request.issued")
    assert "cert.issued" in types
    assert _ca_requests(double, name) == 1, "one request at the CA"


def test_check_ca_picks_up_an_approval_at_once(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, double, "basic", check_interval_seconds=3600)
    created = request_cert(
        service, slug, issuer, "now.corp.test", adcs_template="webserverapproval"
    )
    body = _awaiting(service, slug, created["id"])
    double.approve(body["pending_action"]["request_id"])
    service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/check-ca", 202)
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "issued", body["error"]
    checked = [
        e for e in _events(service, slug, created["id"]) if e["type"] == "adcs.request.issued"
    ]
    assert checked[0]["actor"] == "admin@example.test"
    # not waiting any more
    again = service.call("POST", f"/projects/{slug}/certificates/{created['id']}/check-ca")
    assert again.status_code == 409


def test_denied_request_fails_with_the_disposition(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, double, "basic", check_interval_seconds=3600)
    created = request_cert(
        service, slug, issuer, "deny.corp.test", adcs_template="WebServerApproval"
    )
    body = _awaiting(service, slug, created["id"])
    request_id = body["pending_action"]["request_id"]
    double.deny(request_id, "Denied by CA manager: not a production name")
    service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/check-ca", 202)
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "failed"
    assert "not a production name" in body["error"]["detail"]
    assert str(request_id) in body["error"]["detail"]
    assert body["error"]["type"] == "urn:certautopilot:adcs:denied"
    types = [e["type"] for e in _events(service, slug, created["id"])]
    assert "adcs.request.denied" in types and types[-1] == "cert.failed"


def test_unapproved_request_fails_at_the_deadline(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(
        service, slug, double, "basic", check_interval_seconds=1, approval_timeout_seconds=2
    )
    created = request_cert(
        service, slug, issuer, "late.corp.test", adcs_template="WebServerApproval"
    )
    _awaiting(service, slug, created["id"])
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "failed"
    assert "No CA manager approved request" in body["error"]["detail"]


def test_template_the_ca_no_longer_offers_fails_with_its_words(
    service: Service, double: AdcsDouble
) -> None:
    slug = new_project(service)
    double.templates["Retired"] = "issue"
    try:
        ok = service.ok(
            "POST",
            f"/projects/{slug}/issuers",
            201,
            json={
                "name": "with-retired",
                "kind": "adcs",
                "adcs": {
                    "url": double.url,
                    "templates": ["Retired"],
                    "auth": "basic",
                    "username": "CORP\\svc-pki",
                    "password": "Corp-Pass-1",
                    "ca_bundle_pem": double.ca_bundle_pem,
                },
            },
        )
    finally:
        del double.templates["Retired"]  # the CA admin removes it from the CA
    created = request_cert(service, slug, ok["id"], "retired.corp.test")
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "failed"
    assert "0x80094800" in body["error"]["detail"]
    assert body["error"]["type"] == "urn:certautopilot:adcs:unknown-template"
