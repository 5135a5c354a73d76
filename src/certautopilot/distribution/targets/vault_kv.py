"""``vault-kv``: a KV version 2 write with check-and-set (Vault, or OpenBao).

The current version is read, and the write carries ``cas=<that version>`` (0 when the
secret does not exist), so a concurrent writer is never overwritten silently: the write
fails and the deployment is retried. When the current version already holds this serial
(a retried attempt), nothing is written.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import hvac
import requests
from hvac import exceptions as hvac_errors
from pydantic import Field, field_validator

from certautopilot.distribution import guard
from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)
from certautopilot.distribution.schemas import KindConfig
from certautopilot.errors import DestinationRefused, InvalidInput
from certautopilot.outbound import guarded_session
from certautopilot.plugins import secret_field


class VaultKvConfig(KindConfig):
    address: str = Field(min_length=8, max_length=1000)
    token: str = secret_field(min_length=1, max_length=5000)
    mount: str = Field(default="secret", min_length=1, max_length=200)
    path: str = Field(min_length=1, max_length=1000)
    namespace: str | None = Field(default=None, max_length=200)
    include_private_key: bool = True
    ca_bundle_pem: str | None = Field(default=None, max_length=100_000)
    timeout_seconds: float = Field(default=15, gt=0, le=120)

    @field_validator("mount", "path")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip("/")
        if not value or ".." in value.split("/"):
            raise ValueError("must be a KV path without '..'")
        return value


def validate(config: VaultKvConfig) -> None:
    guard.check_endpoint(config.address, field="vault_kv.address")


class VaultKvTarget:
    kind = "vault-kv"
    name: ClassVar[str] = "vault-kv"
    title: ClassVar[str] = "HashiCorp Vault KV"
    config_model: ClassVar[type[VaultKvConfig]] = VaultKvConfig

    @classmethod
    def validate(cls, config: VaultKvConfig, field: str) -> None:
        """Save-time rules (SSRF guard, allowed paths): ``InvalidInput`` naming the field."""
        validate(config)

    def __init__(self, config: VaultKvConfig) -> None:
        self.config = config

    @contextmanager
    def _client(self) -> Iterator[hvac.Client]:
        c = self.config
        try:
            validate(c)
        except InvalidInput as exc:
            raise DistributionError(str(exc)) from exc
        ca_path = None
        try:
            verify: bool | str = True
            if c.ca_bundle_pem:
                fd, ca_path = tempfile.mkstemp(suffix=".pem")
                with os.fdopen(fd, "w") as handle:
                    handle.write(c.ca_bundle_pem)
                verify = ca_path
            session = guarded_session()  # every connection to a checked address
            client = hvac.Client(
                url=c.address,
                token=c.token,
                namespace=c.namespace,
                verify=verify,
                timeout=int(c.timeout_seconds),
                session=session,
            )
            try:
                yield client
            finally:
                session.close()
        finally:
            if ca_path:
                os.unlink(ca_path)

    def _data(self, material: Material) -> dict[str, str]:
        data = {
            "certificate": material.cert_pem,
            "chain": material.chain_pem,
            "fullchain": material.fullchain_pem,
            "serial": material.serial,
            "fingerprint_sha256": material.fingerprint_sha256,
            "not_after": material.not_after.isoformat(),
        }
        if self.config.include_private_key:
            data["private_key"] = material.require_key()
        return data

    def _current(self, client: hvac.Client) -> tuple[int, dict[str, Any]]:
        """(current version, its data); (0, {}) when the secret does not exist."""
        c = self.config
        try:
            read = client.secrets.kv.v2.read_secret_version(
                path=c.path, mount_point=c.mount, raise_on_deleted_version=False
            )
        except hvac_errors.InvalidPath:
            return 0, {}
        meta = read["data"]["metadata"]
        return int(meta["version"]), dict(read["data"].get("data") or {})

    def _write(self, material: Material) -> DeployResult:
        c = self.config
        with self._client() as client:
            try:
                version, current = self._current(client)
                if current.get("serial") == material.serial:
                    return DeployResult(
                        actions=(f"{c.mount}/{c.path} version {version} holds this serial",),
                        state={"version": version},
                        detail={"version": version},
                    )
                written = client.secrets.kv.v2.create_or_update_secret(
                    path=c.path, secret=self._data(material), cas=version, mount_point=c.mount
                )
            except hvac_errors.Forbidden as exc:
                raise DistributionError(
                    f"Vault refused the token for {c.mount}/{c.path}: {exc}"
                ) from exc
            except hvac_errors.InvalidRequest as exc:
                if "check-and-set" in str(exc):
                    raise DistributionError(
                        f"{c.mount}/{c.path} changed while writing (check-and-set failed at "
                        f"version {version})",
                        retryable=True,
                    ) from exc
                raise DistributionError(f"Vault refused the write: {exc}") from exc
            except DestinationRefused as exc:
                raise DistributionError(f"Vault at {c.address}: {exc}") from exc
            except (hvac_errors.VaultError, requests.RequestException) as exc:
                raise DistributionError(
                    f"Vault at {c.address} failed: {exc}", retryable=True
                ) from exc
        new = int(written["data"]["version"])
        return DeployResult(
            actions=(f"wrote {c.mount}/{c.path} version {new} (cas={version})",),
            state={"version": new},
            detail={"version": new},
        )

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        return await asyncio.to_thread(self._write, material)

    def _dry(self, material: Material) -> DryRunReport:
        c = self.config
        fields = ", ".join(sorted(self._data(material)))
        try:
            with self._client() as client:
                version, current = self._current(client)
                caps = client.adapter.post(
                    "/v1/sys/capabilities-self", json={"paths": [f"{c.mount}/data/{c.path}"]}
                )
        except (
            DistributionError,
            DestinationRefused,
            hvac_errors.VaultError,
            requests.RequestException,
        ) as exc:
            return DryRunReport(
                (Check("vault", False, f"{c.address}: {exc}"),),
                (f"write {c.mount}/{c.path} with {fields}",),
            )
        granted = set(caps.get("capabilities", []) if isinstance(caps, dict) else [])
        needed = "update" if version else "create"
        allowed = bool(granted & {needed, "root", "sudo"})
        would = (
            (f"nothing: version {version} already holds serial {material.serial}",)
            if current.get("serial") == material.serial
            else (f"write {c.mount}/{c.path} version {version + 1} (cas={version}) with {fields}",)
        )
        checks = (
            Check("token", True, f"{c.address} accepted the token"),
            Check(
                "permission",
                allowed,
                f"capabilities on {c.mount}/data/{c.path}: {', '.join(sorted(granted)) or 'none'}",
            ),
        )
        return DryRunReport(checks, would)

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        return await asyncio.to_thread(self._dry, material)
