"""Bring your own CSR: the service issues for the customer's key without ever seeing it."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service
from tests.integration.test_secrets import _everything_in_database, _logs


def _csr(key: object, names: list[str]) -> str:
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_byo_csr_issues_without_the_key(service: Service, project: Project, lab: LabInfo) -> None:
    p = project.slug
    key = ec.generate_private_key(ec.SECP384R1())
    csr = _csr(key, ["byo.example.test", "www.byo.example.test"])
    preflight = service.ok(
        "POST",
        f"/projects/{p}/certificates/preflight",
        json={"issuer": project.issuer_id, "csr_pem": csr},
    )
    assert preflight["sans"] == ["byo.example.test", "www.byo.example.test"]
    assert preflight["key_type"] == "ecdsa-p384" and preflight["csr_provided"] is True

    refused = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={"issuer": project.issuer_id, "csr_pem": csr, "distribution_targets": ["t1"]},
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "distribution_targets"
    assert "never distributed" in refused.json()["detail"]

    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "csr_pem": csr},
    )
    assert created["auto_renew"] is False and "CSR" in created["auto_renew_disabled_reason"]
    issued = service.wait_for(p, created["id"], ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
    leaf_pem = service.call("GET", f"/projects/{p}/certificates/{created['id']}/cert.pem").text
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    assert leaf.public_key() == key.public_key()
    missing = service.call("GET", f"/projects/{p}/certificates/{created['id']}/key.pem")
    assert missing.status_code == 404
    assert "does not hold" in missing.json()["detail"]

    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    secret = format(key.private_numbers().private_value, "x")
    for text in (_everything_in_database(service), _logs(service)):
        assert der.hex()[-64:] not in text and secret not in text

    renewed = service.ok("POST", f"/projects/{p}/certificates/{created['id']}/renew", 202)
    again = service.wait_for(p, renewed["id"], ("issued", "failed"))
    assert again["status"] == "issued" and again["current"]["serial"] != issued["current"]["serial"]
    leaf2 = service.call("GET", f"/projects/{p}/certificates/{created['id']}/cert.pem").text
    assert x509.load_pem_x509_certificate(leaf2.encode()).public_key() == key.public_key()


def test_bad_csrs_say_which_problem(service: Service, project: Project) -> None:
    p = project.slug
    good_key = ec.generate_private_key(ec.SECP256R1())
    good = _csr(good_key, ["bad.example.test"])
    key_pem = good_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    tampered = x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER)
    tampered = tampered[:-3] + bytes([tampered[-3] ^ 0xFF]) + tampered[-2:]
    import base64

    tampered_pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(tampered).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    cases = {
        "not pem at all": ("hello", "not PEM"),
        "private key": (key_pem, "PRIVATE KEY"),
        "garbage body": (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "not a valid PKCS#10",
        ),
        "bad signature": (tampered_pem, "signature"),
        "ed25519": (
            _csr(ed25519.Ed25519PrivateKey.generate(), ["bad.example.test"]),
            "not supported",
        ),
        "small rsa": (_csr(rsa.generate_private_key(65537, 1024), ["bad.example.test"]), "2048"),
        "outside zones": (
            _csr(ec.generate_private_key(ec.SECP256R1()), ["x.nowhere.test"]),
            "not under any DNS zone",
        ),
    }
    for case, (pem, words) in cases.items():
        response = service.call(
            "POST",
            f"/projects/{p}/certificates",
            json={"issuer": project.issuer_id, "csr_pem": pem},
        )
        assert response.status_code == 422, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert words in response.text, (case, response.text)
        if case == "private key":
            assert "MIG" not in response.text and key_pem.splitlines()[1] not in response.text


def test_csr_names_outside_policy_are_warnings(service: Service, project: Project) -> None:
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"allowed_name_suffixes": ["example.test"]})
    csr = _csr(ec.generate_private_key(ec.SECP256R1()), ["ok.example.test", "shop.manual.test"])
    result = service.ok(
        "POST",
        f"/projects/{p}/certificates/preflight",
        json={"issuer": project.issuer_id, "csr_pem": csr},
    )
    dropped = [w for w in result["warnings"] if w["code"] == "name_not_allowed"]
    assert len(dropped) == 1 and "shop.manual.test" in dropped[0]["message"]
    assert dropped[0]["field"] == "csr_pem"
