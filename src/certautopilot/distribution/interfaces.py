"""The port every distribution target implements, and the values it takes and returns.

A target plugin gets a :class:`Material` (the issued certificate, and its key when the
target needs it) and the ``state`` it returned last time for this certificate (e.g. the
ACM ARN to re-import into). It implements two calls:

* ``deploy`` writes the material and returns a :class:`DeployResult`;
* ``dry_run`` checks connectivity and permissions and says what ``deploy`` would write,
  changing nothing on the target.

Both raise :class:`DistributionError` (``retryable`` when trying again may help). The core
(``workflows/distribution.py``) owns retries, backoff, the post-deploy TLS check, the
timeline and the deployment rows; a plugin only talks to its system.

Material is built inside a workflow step from encrypted storage and never leaves the
process: it is not pickled into DBOS step data, logged, or put in a result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certautopilot.crypto import keys
from certautopilot.errors import CertAutoPilotError


class DistributionError(CertAutoPilotError):
    """A target refused or failed. ``retryable``: a later attempt may succeed."""

    status = 502
    title = "Distribution failed"

    def __init__(self, detail: str = "", retryable: bool = False) -> None:
        super().__init__(detail)
        self.args = (detail, retryable)
        self.retryable = retryable


@dataclass(frozen=True)
class Material:
    """One issued version, in the forms targets ask for. ``key_pem`` is None when the
    service does not hold the key (bring-your-own CSR)."""

    certificate_id: str
    version_id: str
    version: int
    common_name: str
    names: tuple[str, ...]
    serial: str
    fingerprint_sha256: str
    not_after: datetime
    cert_pem: str
    chain_pem: str
    key_pem: str | None = field(default=None, repr=False)

    @classmethod
    def from_chain(
        cls,
        *,
        certificate_id: str,
        version_id: str,
        version: int,
        common_name: str,
        names: tuple[str, ...],
        chain: str,
        key_pem: str | None,
    ) -> Material:
        parts = keys.split_pem_chain(chain)
        info = keys.cert_info(parts[0])
        return cls(
            certificate_id=certificate_id,
            version_id=version_id,
            version=version,
            common_name=common_name,
            names=names,
            serial=info.serial_hex,
            fingerprint_sha256=info.fingerprint_sha256,
            not_after=info.not_after,
            cert_pem=parts[0],
            chain_pem="".join(parts[1:]),
            key_pem=key_pem,
        )

    @property
    def fullchain_pem(self) -> str:
        return self.cert_pem + self.chain_pem

    def require_key(self) -> str:
        if self.key_pem is None:
            raise DistributionError(
                "the service does not hold this certificate's private key (it was issued "
                "from your own CSR), so it cannot deploy it"
            )
        return self.key_pem

    @property
    def combined_pem(self) -> str:
        """Full chain then key, one file (HAProxy's ``crt`` format)."""
        return self.fullchain_pem + self.require_key()

    def pkcs12(self, password: str) -> bytes:
        """PKCS#12 (AES-256, PBKDF2) of the key, the leaf and the chain."""
        key = serialization.load_pem_private_key(self.require_key().encode(), password=None)
        leaf = x509.load_pem_x509_certificate(self.cert_pem.encode())
        cas = x509.load_pem_x509_certificates(self.chain_pem.encode()) if self.chain_pem else []
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(50_000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password.encode())
        )
        return pkcs12.serialize_key_and_certificates(
            self.common_name.encode(),
            key,  # type: ignore[arg-type]
            leaf,
            cas or None,
            encryption,
        )

    def key_matches(self) -> bool:
        """True when the private key belongs to the leaf certificate."""
        key = serialization.load_pem_private_key(self.require_key().encode(), password=None)
        leaf = x509.load_pem_x509_certificate(self.cert_pem.encode())
        fmt = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        return bool(
            key.public_key().public_bytes(der, fmt) == leaf.public_key().public_bytes(der, fmt)
        )

    def public_summary(self) -> dict[str, Any]:
        return {
            "certificate_id": self.certificate_id,
            "version": self.version,
            "common_name": self.common_name,
            "names": list(self.names),
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_after": self.not_after.isoformat(),
        }


@dataclass(frozen=True)
class DeployResult:
    """What a deployment did. ``actions`` are human sentences; ``state`` is kept for the next
    deployment of this certificate to this target; ``detail`` is shown to users. No secrets."""

    actions: tuple[str, ...] = ()
    state: Mapping[str, Any] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class DryRunReport:
    """What a deployment would do, and whether it could: nothing was changed on the target."""

    checks: tuple[Check, ...] = ()
    would: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "would": list(self.would),
        }


@runtime_checkable
class Target(Protocol):
    """A distribution target plugin, built with its validated config and decrypted
    credentials (see ``targets.build``).

    The contract every target keeps (checked for each one, and for the in-memory twin
    ``targets/memory.py``, by tests/conformance/test_targets.py):

    * ``deploy`` leaves the destination holding this material, replacing what it held
      (a renewal, given the previous result's ``state``, replaces in place: one ACM
      certificate, one Secret, the same files).
    * Deploying the same material again, with or without that ``state`` and from a new
      target object, succeeds and leaves one copy: a retried attempt is harmless.
    * ``dry_run`` changes nothing on the target. It reports an unreachable or refusing
      server as a failed :class:`Check`, not by raising.
    * Only :class:`DistributionError` escapes either call. An unreachable server is
      ``retryable``; refused credentials are not (the same token fails the same way).
      Material the target cannot deploy (no private key when the target
      sends one) is refused before anything is written.
    * ``DeployResult.state`` and ``detail`` and ``DryRunReport.as_dict()`` are JSON;
      no private key or credential appears in them, in an error or in a ``repr``.
    """

    kind: str

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult: ...

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport: ...
