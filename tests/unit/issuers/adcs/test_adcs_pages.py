"""The certsrv page parser on fixture pages: reconstructed English pages, markup variants,
a German page (codes only), and pages that are not certsrv at all."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from certautopilot.issuers.adcs import pages

FIXTURES = Path(__file__).parent / "fixtures"


def page(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_issued_link_with_entity() -> None:
    assert pages.parse_submission(page("issued.html")) == pages.Submission(
        "issued", 4242, "Issued", None
    )


def test_issued_from_script_on_a_translated_page() -> None:
    result = pages.parse_submission(page("issued_js_de.html"))
    assert (result.kind, result.request_id) == ("issued", 77)


def test_pending_across_line_breaks_and_inline_markup() -> None:
    result = pages.parse_submission(page("pending.html"))
    assert (result.kind, result.request_id) == ("pending", 1031)


def test_unknown_template_denial_keeps_the_disposition_message() -> None:
    result = pages.parse_submission(page("denied_unknown_template.html"))
    assert result.kind == "denied"
    assert result.request_id == 1032
    assert result.unknown_template
    assert result.message.startswith("Denied by Policy Module 0x80094800, The request was not")


def test_denial_recognised_by_its_code_alone() -> None:
    result = pages.parse_submission(page("denied_code_only_de.html"))
    assert result.kind == "denied"
    assert result.code == "0x80094012"
    assert "0x80094012" in result.message


def test_a_page_that_is_not_certsrv_is_unexpected_with_an_excerpt() -> None:
    result = pages.parse_submission(page("login_page.html"))
    assert result.kind == "unexpected"
    assert "Please sign in to continue." in result.message
    assert "<" not in result.message


@pytest.mark.parametrize(
    ("html", "kind"),
    [("", "unexpected"), ("<<<>>>", "unexpected"), ("x" * 100_000, "unexpected")],
)
def test_garbage_never_raises(html: str, kind: str) -> None:
    result = pages.parse_submission(html)
    assert result.kind == kind
    assert len(result.message) <= pages.EXCERPT_CHARS


def test_status_pages() -> None:
    pending = pages.parse_request_status(page("status_pending.html"))
    assert pending == pages.RequestStatus("pending", "Taken Under Submission", None)
    denied = pages.parse_request_status(page("status_denied.html"))
    assert denied.kind == "denied"
    assert denied.code == "0x80094014"
    assert denied.message.startswith("Denied by John Admin: not for production names; ")
    unknown = pages.parse_request_status(page("status_unknown.html"))
    assert unknown.kind == "not_found"
    assert pages.parse_request_status(page("login_page.html")).kind == "unexpected"


def test_renewals_and_templates() -> None:
    assert pages.parse_renewals(page("certcarc.html")) == 3
    assert pages.parse_renewals("<html></html>") is None
    assert pages.parse_templates(page("certrqxt.html")) == ["WebServer", "Web Server 2019", "User"]
    assert pages.parse_templates(page("login_page.html")) is None


def _cert(
    cn: str,
    issuer: x509.Name | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    own = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(signer or own, hashes.SHA256())
    )
    return cert, own


def test_certificate_bodies_in_every_encoding() -> None:
    cert, _ = _cert("leaf")
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    for body in (der, pem, pem.replace(b"\n", b"\r\n"), base64.encodebytes(der)):
        assert pages.decode_certificate(body) == cert
    with pytest.raises(pages.PageError):
        pages.decode_certificate(b"<html>Taken Under Submission</html>")
    with pytest.raises(pages.PageError):
        pages.decode_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA")


def test_der_whose_last_byte_looks_like_white_space() -> None:
    """A DER body is taken as it is: its signature may end in 0x09-0x0d or 0x20 (this
    test once failed at random, about one run in forty, when such bytes were stripped)."""
    for _ in range(2000):
        cert, _ = _cert("leaf")
        der = cert.public_bytes(serialization.Encoding.DER)
        if der[-1:] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
            break
    else:
        pytest.fail("no certificate ending in a white-space byte in 2000 tries")
    assert pages.decode_certificate(der) == cert


def test_pkcs7_under_any_label_and_chain_order() -> None:
    root, root_key = _cert("root")
    issuing, issuing_key = _cert("issuing", root.subject, signer=root_key)
    leaf, _ = _cert("leaf", issuing.subject, signer=issuing_key)
    der = pkcs7.serialize_certificates([root, issuing], serialization.Encoding.DER)
    as_certificate = (
        b"-----BEGIN CERTIFICATE-----\r\n"
        + base64.encodebytes(der).replace(b"\n", b"\r\n")
        + b"-----END CERTIFICATE-----\r\n"
    )
    for body in (
        der,
        as_certificate,
        pkcs7.serialize_certificates([root, issuing], serialization.Encoding.PEM),
    ):
        assert set(pages.decode_pkcs7_chain(body)) == {root, issuing}
    assert pages.order_chain(leaf, [root, issuing]) == [leaf, issuing]
    assert pages.order_chain(leaf, []) == [leaf]
    with pytest.raises(pages.PageError):
        pages.decode_pkcs7_chain(b"garbage!")
