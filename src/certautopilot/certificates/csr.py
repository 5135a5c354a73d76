"""Bring-your-own CSR: parse, verify, and read names and key type from a PEM PKCS#10."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certautopilot.certificates.names import MAX_NAMES, normalize_name, too_many_names
from certautopilot.errors import InvalidInput

FIELD = "csr_pem"
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_CSR_LABELS = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")


@dataclass(frozen=True)
class CsrInfo:
    pem: str
    names: list[str]
    key_type: str


def _key_type(csr: x509.CertificateSigningRequest) -> str:
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name)
        if curve is None:
            raise InvalidInput.field(
                FIELD, f"the CSR's key uses the curve {key.curve.name}; use P-256 or P-384"
            )
        return curve
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidInput.field(
                FIELD, f"the CSR's RSA key has {key.key_size} bits; at least 2048 are needed"
            )
        return f"rsa-{key.key_size}"
    raise InvalidInput.field(
        FIELD, f"the CSR's key type ({type(key).__name__}) is not supported; use ECDSA or RSA"
    )


def parse_csr(pem: str) -> CsrInfo:
    text = (pem or "").strip()
    labels = _BEGIN.findall(text)
    if not labels:
        raise InvalidInput.field(FIELD, "is not PEM: expected -----BEGIN CERTIFICATE REQUEST-----")
    if labels[0] not in _CSR_LABELS:
        hint = (
            " Never paste a private key: the service does not want it (nothing was stored)."
            if "PRIVATE KEY" in labels[0]
            else ""
        )
        raise InvalidInput.field(
            FIELD, f"is a PEM {labels[0]}, not a CERTIFICATE REQUEST (PKCS#10).{hint}"
        )
    if len(labels) > 1:
        raise InvalidInput.field(FIELD, "must hold exactly one CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(text.encode())
    except ValueError as exc:
        raise InvalidInput.field(FIELD, f"is not a valid PKCS#10 request ({exc})") from exc
    if not csr.is_signature_valid:
        raise InvalidInput.field(FIELD, "its signature does not verify with its own public key")
    key_type = _key_type(csr)
    raw: list[str] = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        raw += san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    names: list[str] = []
    for value in raw:
        try:
            name = normalize_name(value)
        except ValueError as exc:
            raise InvalidInput.field(FIELD, f"the CSR names {value!r}, which {exc}") from exc
        if name not in names:
            names.append(name)
    if not names:
        raise InvalidInput.field(FIELD, "the CSR names no DNS name (no CN, no SAN)")
    if len(names) > MAX_NAMES:
        raise InvalidInput.field(FIELD, "the CSR names too many: " + too_many_names(len(names)))
    return CsrInfo(pem=text + "\n", names=names, key_type=key_type)
