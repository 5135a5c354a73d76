"""Real certificates from Pebble through BIND, end to end through the API and the worker."""

from __future__ import annotations

import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt, pebble_roots
from tests.conftest import Project, Service


def _verify_chain(fullchain: str, lab: LabInfo) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(fullchain.encode())
    roots = [x509.load_pem_x509_certificate(p.encode()) for p in pebble_roots(lab)]
    root = next(r for r in roots if r.subject == r.issuer)
    chain = [*certs, root]
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    return certs[0]


def _names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


@pytest.mark.parametrize(
    ("key_type", "key_class", "size"),
    [("ecdsa-p256", ec.EllipticCurvePublicKey, 256), ("rsa-2048", rsa.RSAPublicKey, 2048)],
)
def test_issues_real_certificate_with_sans_and_wildcard(
    service: Service, project: Project, lab: LabInfo, key_type: str, key_class: type, size: int
) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": "WWW.Example.Test.",
            "sans": [
                "api.example.test",
                "*.example.test",
                "www.example.test",
                "x.sub.example.test",
            ],
            "key_type": key_type,
        },
    )
    assert created["status"] == "requested"
    assert created["sans"] == [
        "www.example.test",
        "api.example.test",
        "*.example.test",
        "x.sub.example.test",
    ]
    body = service.wait_for(p, created["id"], ("issued", "failed"))
    assert body["status"] == "issued", body["error"]
    assert body["current"]["serial"]
    assert body["renewal"]["next_at"]

    fullchain = service.call("GET", f"/projects/{p}/certificates/{created['id']}/fullchain.pem")
    assert fullchain.status_code == 200
    leaf = _verify_chain(fullchain.text, lab)
    assert _names(leaf) == set(created["sans"])
    public = leaf.public_key()
    assert isinstance(public, key_class)
    assert public.key_size == size  # type: ignore[union-attr]
    assert format(leaf.serial_number, "x") == body["current"]["serial"]

    types = [e["type"] for e in service.timeline(p, created["id"])["events"]]
    assert types[0] == "cert.requested"
    for expected in (
        "acme.order.created",
        "dns.record.published",
        "dns.record.removed",
        "cert.issued",
    ):
        assert expected in types
    assert types.index("dns.record.removed") > types.index("dns.record.published")

    # Other tests share the lab's zones (and some leave a workflow waiting for a person
    # with its records up): look at this certificate's challenge names only.
    own = {"_acme-challenge." + n.removeprefix("*.") for n in created["sans"]}
    leftovers = [
        n
        for zone in ("example.test", "sub.example.test")
        for n, _ in axfr_txt(lab, zone)
        if n.rstrip(".") in own
    ]
    assert leftovers == []


def test_a_common_name_too_long_for_the_subject_is_issued_as_a_san(
    service: Service, project: Project, lab: LabInfo
) -> None:
    """X.509 caps a CN at 64 characters: like Let's Encrypt, issue on the SAN alone."""
    p = project.slug
    long_name = "a" * 50 + ".long.example.test"  # 68 characters
    body = {"issuer": project.issuer_id, "common_name": long_name, "sans": ["www.example.test"]}
    check = service.ok("POST", f"/projects/{p}/certificates/preflight", 200, json=body)
    assert any("longer than 64 characters" in note for note in check["notes"]), check
    created = service.ok("POST", f"/projects/{p}/certificates", 202, json=body)
    assert created["common_name"] == long_name
    done = service.wait_for(p, created["id"], ("issued", "failed"))
    assert done["status"] == "issued", done["error"]
    pem = service.call("GET", f"/projects/{p}/certificates/{created['id']}/fullchain.pem")
    leaf = _verify_chain(pem.text, lab)
    assert _names(leaf) == {long_name, "www.example.test"}  # (the subject is the CA's choice)


def test_the_name_limit_of_100_counts_the_common_name(service: Service, project: Project) -> None:
    p = project.slug
    sans = [f"n{i}.example.test" for i in range(100)]
    body = {"issuer": project.issuer_id, "common_name": "www.example.test", "sans": sans}
    refused = service.call("POST", f"/projects/{p}/certificates", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    errors = refused.json()["errors"]
    assert any(e["field"] == "sans" and "at most 100 names in all" in e["message"] for e in errors)
    listed = service.ok("GET", f"/projects/{p}/certificates", 200)
    assert listed["items"] == []
