"""ACME account keys: generate, load, thumbprint, and the DNS-01 key-authorization digest.

Account keys are EC P-256 by default; RSA (>= 2048 bits) and EC P-384/P-521 PEMs are
accepted on load so that accounts created elsewhere can be imported. The caller decrypts
the PEM and builds the :class:`josepy.JWK` here; nothing in this package ever returns or
stores the private key.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64encode
from josepy.jwa import ES256, ES384, ES512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from certautopilot.errors import InvalidInput

__all__ = [
    "generate_account_key",
    "jwk_thumbprint",
    "key_authorization_digest",
    "load_account_key",
    "signing_algorithm",
]

_MIN_RSA_BITS = 2048
_EC_ALGORITHMS: dict[str, JWASignature] = {
    "secp256r1": ES256,
    "secp384r1": ES384,
    "secp521r1": ES512,
}


def generate_account_key() -> tuple[JWK, bytes]:
    """Create a new EC P-256 account key; return it as a JWK and as an unencrypted PKCS#8 PEM.

    The PEM is for the caller to encrypt and store; do not log it or pass it through a
    workflow step.
    """
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return JWKEC(key=private_key), pem


def load_account_key(pem: bytes) -> JWK:
    """Build a JWK from an unencrypted PEM private key (EC P-256/384/521 or RSA >= 2048)."""
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        # The message of cryptography's errors never contains key material.
        raise InvalidInput.field("account_key", f"not a usable PEM private key ({exc})") from exc
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.name not in _EC_ALGORITHMS:
            raise InvalidInput.field(
                "account_key", f"unsupported EC curve {private_key.curve.name}"
            )
        return JWKEC(key=private_key)
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < _MIN_RSA_BITS:
            raise InvalidInput.field(
                "account_key", f"RSA key of {private_key.key_size} bits is too short"
            )
        return JWKRSA(key=private_key)
    raise InvalidInput.field("account_key", "only EC and RSA account keys are supported")


def signing_algorithm(key: JWK) -> JWASignature:
    """The JWS algorithm to sign ACME requests with this key."""
    if isinstance(key, JWKEC):
        curve_name = key.key.curve.name
        try:
            return _EC_ALGORITHMS[curve_name]
        except KeyError:
            raise InvalidInput.field("account_key", f"unsupported EC curve {curve_name}") from None
    if isinstance(key, JWKRSA):
        return RS256
    raise InvalidInput.field("account_key", "only EC and RSA account keys are supported")


def jwk_thumbprint(key: JWK) -> str:
    """RFC 7638 SHA-256 thumbprint of the key's public part, base64url without padding."""
    digest: bytes = key.public_key().thumbprint(hash_function=hashes.SHA256)
    return b64encode(digest).decode("ascii")


def key_authorization_digest(token: str, thumbprint: str) -> str:
    """The DNS-01 TXT value (RFC 8555 §8.4): base64url(SHA-256(token "." thumbprint)).

    ``token`` is the challenge token as the CA sent it (base64url text) and ``thumbprint``
    the value of :func:`jwk_thumbprint` for the account key.
    """
    key_authorization = f"{token}.{thumbprint}".encode("ascii")
    return b64encode(hashlib.sha256(key_authorization).digest()).decode("ascii")
