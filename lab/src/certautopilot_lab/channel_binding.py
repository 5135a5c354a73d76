"""The double's own ``tls-server-end-point`` channel binding (RFC 5929, section 4.1).

Written apart from the client's helper (``certautopilot.issuers.adcs.auth``) on purpose: if
both sides shared one function, a bug in it would produce matching wrong bindings and every
channel-binding test would still pass. This one reads the signature algorithm's OID from
the certificate and hashes its DER with :mod:`hashlib`; the client asks ``cryptography``
for the signature hash. A test compares the two, and both against fixed values.

RFC 5929 4.1: the hash is the one the certificate's ``signatureAlgorithm`` uses, except
that MD5 and SHA-1 are replaced by SHA-256. An algorithm with no single hash (RSA-PSS
carries it in parameters, Ed25519 has none) leaves the binding undefined; the double signs
with ECDSA-SHA256 only, so it refuses those rather than guess.
"""

from __future__ import annotations

import hashlib

from cryptography import x509

PREFIX = b"tls-server-end-point:"

# signatureAlgorithm OID -> hashlib name, after RFC 5929's MD5/SHA-1 -> SHA-256 rule
_HASH_BY_SIGNATURE_OID = {
    "1.2.840.113549.1.1.4": "sha256",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha256",  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.14": "sha224",  # sha224WithRSAEncryption
    "1.2.840.113549.1.1.11": "sha256",  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": "sha384",  # sha384WithRSAEncryption
    "1.2.840.113549.1.1.13": "sha512",  # sha512WithRSAEncryption
    "1.2.840.10045.4.1": "sha256",  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": "sha224",  # ecdsa-with-SHA224
    "1.2.840.10045.4.3.2": "sha256",  # ecdsa-with-SHA256
    "1.2.840.10045.4.3.3": "sha384",  # ecdsa-with-SHA384
    "1.2.840.10045.4.3.4": "sha512",  # ecdsa-with-SHA512
    "1.2.840.10040.4.3": "sha256",  # dsa-with-sha1
    "2.16.840.1.101.3.4.3.2": "sha256",  # dsa-with-sha256
}


def end_point_hash(cert_der: bytes) -> str:
    """The hashlib name RFC 5929 picks for this certificate."""
    oid = x509.load_der_x509_certificate(cert_der).signature_algorithm_oid.dotted_string
    try:
        return _HASH_BY_SIGNATURE_OID[oid]
    except KeyError:
        raise ValueError(f"no tls-server-end-point binding for signature algorithm {oid}") from None


def tls_server_end_point(cert_der: bytes) -> bytes:
    """``tls-server-end-point:`` followed by the RFC 5929 hash of the certificate's DER."""
    return PREFIX + hashlib.new(end_point_hash(cert_der), cert_der).digest()
