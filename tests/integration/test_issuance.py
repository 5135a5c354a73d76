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
