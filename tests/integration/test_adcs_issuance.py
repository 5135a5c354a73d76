"""AD CS issuance end to end: API → durable workflow in the real worker → the certsrv double."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certautopilot_lab.adcs_double import TEMPLATE_NAME_OID, AdcsDouble
from tests.conftest import Service
from tests.integration._adcs_fixture import (
    USER,
    add_issuer,
    dns_names,
    new_project,
    request_cert,
    verify_chain,
)


@pytest.fixture(scope="module")
def double() -> Iterator[AdcsDouble]:
    """Basic and NTLM (channel binding checked only when sent)."""
    with AdcsDouble(auth_modes={"basic", "ntlm"}) as d:
        yield d


@pytest.fixture(scope="module")
def hardened() -> Iterator[AdcsDouble]:
    """NTLM only, channel binding required (Extended Protection "Required")."""
    with AdcsDouble(auth_modes={"ntlm"}, require_channel_binding=True) as d:
        yield d


@pytest.fixture(scope="module")
def cert_auth() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"client_cert"}) as d:
        yield d


def _issued(service: Service, slug: str, cert_id: str, double: AdcsDouble) -> None:
    body = service.wait_for(slug, cert_id, ("issued", "failed"), timeout=60)
    assert body["status"] == "issued", body["error"]
    fullchain = service.call("GET", f"/projects/{slug}/certificates/{cert_id}/fullchain.pem")
    assert fullchain.status_code == 200
    leaf = verify_chain(fullchain.text, double)
    assert dns_names(leaf) == set(body["sans"])
    assert format(leaf.serial_number, "x") == body["current"]["serial"]
    template = leaf.extensions.get_extension_for_oid(TEMPLATE_NAME_OID).value
    assert template.value[2:].decode("utf-16-be") in ("WebServer", "WebServerApproval")


def test_basic_template_issues_at_once(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, double, "basic")
    # no DNS zone in this project: AD CS names need none
    created = request_cert(service, slug, issuer, "www.corp.test")
    _issued(service, slug, created["id"], double)
    types = [e["type"] for e in service.timeline(slug, created["id"])["events"]]
    assert types[0] == "cert.requested"
    assert "key.generated" in types and "adcs.request.issued" in types
    assert types[-1] in ("cert.issued", "renewal.scheduled")
    body = service.ok("GET", f"/projects/{slug}/certificates/{created['id']}")
    assert body["renewal"]["next_at"]


def test_ntlm_without_required_channel_binding(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, double, "ntlm")
    created = request_cert(service, slug, issuer, "ntlm.corp.test")
    _issued(service, slug, created["id"], double)
    assert any(r.requester == USER for r in double.requests.values())


def test_ntlm_with_required_channel_binding(service: Service, hardened: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, hardened, "ntlm")
    created = request_cert(service, slug, issuer, "epa.corp.test")
    _issued(service, slug, created["id"], hardened)
    assert hardened.stats.refused_bindings == 0
    assert {r.requester for r in hardened.requests.values()} == {USER}


def test_client_certificate_auth(service: Service, cert_auth: AdcsDouble) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, cert_auth, "client_cert")
    created = request_cert(service, slug, issuer, "mtls.corp.test")
    _issued(service, slug, created["id"], cert_auth)
    assert {r.requester for r in cert_auth.requests.values()} == {"svc-pki"}
