"""Real certificates from Pebble and from acme2certifier, both validating through BIND, end to
end through the API and the worker."""

from __future__ import annotations

import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certautopilot_lab.a2c import A2CInfo
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import axfr_txt
from tests.conftest import CA, Project, Service, add_a2c_issuer, create_project, pebble_ca

_KEYS = {
    "ecdsa-p256": (ec.EllipticCurvePublicKey, 256),
    "ecdsa-p384": (ec.EllipticCurvePublicKey, 384),
    "rsa-2048": (rsa.RSAPublicKey, 2048),
    "rsa-3072": (rsa.RSAPublicKey, 3072),
    "rsa-4096": (rsa.RSAPublicKey, 4096),
}
# Every key type at acme2certifier; Pebble (the fast CA most other tests use) the two common.
_CA_KEYS = [
    ("pebble", "ecdsa-p256"),
    ("pebble", "rsa-2048"),
    *(("acme2certifier", key) for key in _KEYS),
]


def _verify_chain(fullchain: str, ca: CA) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(fullchain.encode())
    roots = [x509.load_pem_x509_certificate(p.encode()) for p in ca.roots()]
    root = next(r for r in roots if r.subject == r.issuer)
    chain = [*certs, root]
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    return certs[0]


def _names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


@pytest.mark.parametrize(("acme_ca", "key_type"), _CA_KEYS, indirect=["acme_ca"])
def test_issues_real_certificate_with_sans_and_wildcard(
    service: Service, ca_project: Project, acme_ca: CA, lab: LabInfo, key_type: str
) -> None:
    key_class, size = _KEYS[key_type]
    p = ca_project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": ca_project.issuer_id,
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
    leaf = _verify_chain(fullchain.text, acme_ca)
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
    leaf = _verify_chain(pem.text, pebble_ca(lab))
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


def test_a_cas_own_identifier_limit_is_learned_and_shown_in_preflight(
    service: Service, lab: LabInfo, a2c: A2CInfo
) -> None:
    """acme2certifier refuses an order of more than 20 identifiers and says so only by
    refusing it (``rejectedIdentifier``): after that refusal, preflight warns about a
    certificate that large on this issuer before anything is ordered."""
    made = create_project(service, lab, manual_zone=False)
    issuer = add_a2c_issuer(service, a2c, made.slug)
    p = made.slug
    names = [f"n{i}.example.test" for i in range(21)]
    body = {"issuer": issuer["id"], "common_name": names[0], "sans": names}
    before = service.ok("POST", f"/projects/{p}/certificates/preflight", 200, json=body)
    assert not [w for w in before["warnings"] if w["code"] == "issuer.identifier_limit"]
    created = service.ok("POST", f"/projects/{p}/certificates", 202, json=body)
    failed = service.wait_for(p, created["id"], ("issued", "failed"))
    assert failed["status"] == "failed"
    assert "identifier limit exceeded" in str(failed["error"])

    after = service.ok("POST", f"/projects/{p}/certificates/preflight", 200, json=body)
    [limit] = [w for w in after["warnings"] if w["code"] == "issuer.identifier_limit"]
    assert limit["field"] == "sans"
    assert "refused an order of 21 names" in limit["message"]
    assert "identifier limit exceeded" in limit["message"]
    twenty = {**body, "sans": names[:20]}
    fits = service.ok("POST", f"/projects/{p}/certificates/preflight", 200, json=twenty)
    assert not [w for w in fits["warnings"] if w["code"] == "issuer.identifier_limit"]
