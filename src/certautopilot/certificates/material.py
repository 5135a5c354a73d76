"""The encrypted material of a certificate version: its private key and its chain.

One place knows how they are stored (owner ``certificate_versions``, purposes
``private_key`` and ``certificate_chain``), so every path reads and writes them alike.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from certautopilot.certificates.models import CertificateVersion
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import NotFound

OWNER = "certificate_versions"


def store_private_key(
    session: Session, kek: KeyEncryptionKey, version: CertificateVersion, key_pem: bytes
) -> None:
    version.key_secret_id = secrets.store_secret(
        session,
        kek,
        owner_table=OWNER,
        owner_id=version.id,
        purpose="private_key",
        plaintext=key_pem,
    ).id


def store_chain(
    session: Session, kek: KeyEncryptionKey, version: CertificateVersion, chain_pem: str
) -> None:
    version.chain_secret_id = secrets.store_secret(
        session,
        kek,
        owner_table=OWNER,
        owner_id=version.id,
        purpose="certificate_chain",
        plaintext=chain_pem.encode(),
    ).id


def private_key_pem(
    session: Session, kek: KeyEncryptionKey, version: CertificateVersion
) -> str | None:
    """None when the service never held the key (a certificate from the customer's CSR)."""
    if version.key_secret_id is None:
        return None
    return secrets.reveal_secret(
        session,
        kek,
        version.key_secret_id,
        owner_table=OWNER,
        owner_id=version.id,
        purpose="private_key",
    ).decode()


def chain_pem(session: Session, kek: KeyEncryptionKey, version: CertificateVersion) -> str:
    if version.chain_secret_id is None:
        raise NotFound("the certificate version has not been issued")
    return secrets.reveal_secret(
        session,
        kek,
        version.chain_secret_id,
        owner_table=OWNER,
        owner_id=version.id,
        purpose="certificate_chain",
    ).decode()
