"""Private keys, CSRs and certificate metadata with ``cryptography``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certautopilot.certificates.names import subject_common_name
from certautopilot.errors import InvalidInput

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096")
DEFAULT_KEY_TYPE = "ecdsa-p256"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def generate_key(key_type: str) -> PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise InvalidInput.field("key_type", f"must be one of {', '.join(KEY_TYPES)}")


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def key_from_pem(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidInput.field("key", "unsupported private key type")
    return key


def build_csr(key: PrivateKey, names: list[str]) -> bytes:
    """A CSR for ``names``: every name a SAN, the first also the subject CN when it fits."""
    cn = subject_common_name(names)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn is not None else []
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertInfo:
    serial_hex: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    names: tuple[str, ...]


def split_pem_chain(pem: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    parts = [p.strip() + "\n" + marker + "\n" for p in pem.split(marker) if p.strip()]
    return [p.lstrip() for p in parts]


def cert_info(cert_pem: str) -> CertInfo:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(
        serial_hex=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        names=names,
    )
