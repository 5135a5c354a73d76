"""Account keys and the DNS-01 digest."""

from __future__ import annotations

import pytest
from acme import challenges
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64decode
from josepy.jwa import ES256, ES384, RS256
from josepy.jwk import JWK, JWKEC, JWKRSA

from certautopilot.errors import InvalidInput
from certautopilot.issuers.acme.keys import (
    generate_account_key,
    jwk_thumbprint,
    key_authorization_digest,
    load_account_key,
    signing_algorithm,
)


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_generated_key_is_p256_and_round_trips() -> None:
    jwk, pem = generate_account_key()
    assert isinstance(jwk, JWKEC)
    assert jwk.key.curve.name == "secp256r1"
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_account_key(pem)
    assert jwk_thumbprint(loaded) == jwk_thumbprint(jwk)
    assert signing_algorithm(loaded) is ES256


def test_rsa_and_p384_keys_load() -> None:
    rsa_jwk = load_account_key(_pem(rsa.generate_private_key(65537, 2048)))
    assert isinstance(rsa_jwk, JWKRSA)
    assert signing_algorithm(rsa_jwk) is RS256
    p384 = load_account_key(_pem(ec.generate_private_key(ec.SECP384R1())))
    assert signing_algorithm(p384) is ES384


@pytest.mark.parametrize(
    "pem",
    [
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        _pem(rsa.generate_private_key(65537, 1024)),
        _pem(ec.generate_private_key(ec.SECP256K1())),
    ],
)
def test_unusable_keys_are_invalid_input(pem: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_account_key(pem)
    assert caught.value.errors[0][0] == "account_key"


def test_digest_matches_the_acme_library() -> None:
    jwk, _ = generate_account_key()
    token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
    expected = challenges.DNS01(token=b64decode(token)).validation(jwk)
    assert key_authorization_digest(token, jwk_thumbprint(jwk)) == expected


def test_rfc7638_thumbprint() -> None:
    # The example key and thumbprint of RFC 7638 §3.1.
    public = JWK.from_json(
        {
            "kty": "RSA",
            "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
            "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08q"
            "NLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awa"
            "pJzKnqDKgw",
        }
    )
    assert jwk_thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
