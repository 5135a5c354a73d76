"""Helpers for the AD CS tests: the certsrv double, a project, an ``adcs`` issuer."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from cryptography import x509

from certautopilot_lab.adcs_double import AdcsDouble
from tests.conftest import Service

USER = "CORP\\svc-pki"
PASSWORD = "Corp-Pass-1"


def new_project(service: Service) -> str:
    slug = f"adcs-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"AD CS {slug}"})
    return slug


def issuer_body(double: AdcsDouble, auth: str = "basic", **extra: Any) -> dict[str, Any]:
    adcs: dict[str, Any] = {
        "url": double.url,
        "templates": ["WebServer", "WebServerApproval"],
        "auth": auth,
        "ca_bundle_pem": double.ca_bundle_pem,
    }
    if auth in ("basic", "ntlm"):
        adcs |= {"username": USER, "password": PASSWORD}
    if auth == "client_cert":
        cert, key = double.client_certificate("svc-pki")
        adcs |= {"client_cert_pem": cert, "client_key_pem": key}
    adcs |= extra
    return {"name": f"corp-ca-{uuid.uuid4().hex[:6]}", "kind": "adcs", "adcs": adcs}


def add_issuer(
    service: Service, slug: str, double: AdcsDouble, auth: str = "basic", **extra: Any
) -> str:
    body = service.ok(
        "POST", f"/projects/{slug}/issuers", 201, json=issuer_body(double, auth, **extra)
    )
    issuer_id: str = body["id"]
    return issuer_id


def request_cert(
    service: Service, slug: str, issuer: str, name: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer, "common_name": name, "sans": [f"api.{name}"], **extra},
    )
    return body


def verify_chain(fullchain: str, double: AdcsDouble) -> x509.Certificate:
    """The leaf, after checking every link up to the double's root."""
    certs = x509.load_pem_x509_certificates(fullchain.encode())
    chain = [*certs, double.ca.root]
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    return certs[0]


def dns_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))
