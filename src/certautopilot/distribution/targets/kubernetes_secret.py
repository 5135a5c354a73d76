"""``kubernetes-secret``: a ``kubernetes.io/tls`` Secret created, or updated in place.

Plain REST on the Secrets API with a bearer token: ``GET`` the Secret; ``POST`` it when
absent, else ``PUT`` it with the ``resourceVersion`` just read (optimistic concurrency: a
concurrent change answers 409 and the deployment is retried). A Secret of another type is
refused (a Secret's type cannot change). The dry run uses the API server's own
``?dryRun=All``, which runs authorization and validation without persisting anything.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field

from certautopilot.distribution import guard
from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)
from certautopilot.distribution.schemas import KindConfig
from certautopilot.distribution.targets.webhook import tls_context
from certautopilot.errors import DestinationRefused, InvalidInput
from certautopilot.outbound import guarded_async_transport
from certautopilot.plugins import secret_field


class KubernetesSecretConfig(KindConfig):
    api_server: str = Field(min_length=8, max_length=1000)
    token: str = secret_field(min_length=1, max_length=20_000)
    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    name: str = Field(pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", max_length=253)
    include_ca: bool = Field(default=False, description="add ca.crt (the chain)")
    labels: dict[str, str] = Field(default_factory=dict, max_length=50)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=50)
    ca_bundle_pem: str | None = Field(default=None, max_length=100_000)
    timeout_seconds: float = Field(default=15, gt=0, le=120)


TLS_TYPE = "kubernetes.io/tls"
MANAGED_BY = "certautopilot"


def validate(config: KubernetesSecretConfig) -> None:
    guard.check_endpoint(config.api_server, field="kubernetes_secret.api_server")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class KubernetesSecretTarget:
    kind = "kubernetes-secret"
    name: ClassVar[str] = "kubernetes-secret"
    title: ClassVar[str] = "Kubernetes TLS secret"
    config_model: ClassVar[type[KubernetesSecretConfig]] = KubernetesSecretConfig

    @classmethod
    def validate(cls, config: KubernetesSecretConfig, field: str) -> None:
        """Save-time rules (SSRF guard, allowed paths): ``InvalidInput`` naming the field."""
        validate(config)

    def __init__(self, config: KubernetesSecretConfig) -> None:
        self.config = config

    def _client(self) -> httpx.AsyncClient:
        c = self.config
        try:
            validate(c)
        except InvalidInput as exc:
            raise DistributionError(str(exc)) from exc
        return httpx.AsyncClient(
            base_url=c.api_server.rstrip("/"),
            headers={"Authorization": f"Bearer {c.token}", "Accept": "application/json"},
            timeout=c.timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            transport=guarded_async_transport(verify=tls_context(c.ca_bundle_pem)),
        )

    @property
    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self.config.namespace}/secrets"

    def _body(self, material: Material, resource_version: str | None) -> dict[str, Any]:
        c = self.config
        data = {"tls.crt": _b64(material.fullchain_pem), "tls.key": _b64(material.require_key())}
        if c.include_ca and material.chain_pem:
            data["ca.crt"] = _b64(material.chain_pem)
        metadata: dict[str, Any] = {
            "name": c.name,
            "namespace": c.namespace,
            "labels": {**c.labels, "app.kubernetes.io/managed-by": MANAGED_BY},
            "annotations": {
                **c.annotations,
                "certautopilot.io/serial": material.serial,
                "certautopilot.io/certificate-id": material.certificate_id,
            },
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": TLS_TYPE,
            "metadata": metadata,
            "data": data,
        }

    async def _apply(
        self, client: httpx.AsyncClient, material: Material, *, dry_run: bool
    ) -> tuple[str, httpx.Response]:
        c = self.config
        params = {"dryRun": "All"} if dry_run else {}
        current = await client.get(f"{self._collection}/{c.name}")
        if current.status_code == 404:
            response = await client.post(
                self._collection, json=self._body(material, None), params=params
            )
            return "created", response
        _raise_for(current, "read")
        found = current.json()
        if found.get("type") != TLS_TYPE:
            raise DistributionError(
                f"Secret {c.namespace}/{c.name} exists with type {found.get('type')!r}, "
                f"not {TLS_TYPE}; delete it or choose another name"
            )
        rv = found.get("metadata", {}).get("resourceVersion")
        response = await client.put(
            f"{self._collection}/{c.name}", json=self._body(material, rv), params=params
        )
        return "updated", response

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        c = self.config
        try:
            async with self._client() as client:
                verb, response = await self._apply(client, material, dry_run=False)
        except DestinationRefused as exc:
            raise DistributionError(f"the Kubernetes API at {c.api_server}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise DistributionError(
                f"cannot reach the Kubernetes API at {c.api_server}: {exc}", retryable=True
            ) from exc
        _raise_for(response, "write")
        rv = response.json().get("metadata", {}).get("resourceVersion")
        return DeployResult(
            actions=(
                f"{verb} Secret {c.namespace}/{c.name} ({TLS_TYPE}, serial {material.serial})",
            ),
            state={"resource_version": rv},
            detail={"secret": f"{c.namespace}/{c.name}", "resource_version": rv},
        )

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        c = self.config
        try:
            async with self._client() as client:
                verb, response = await self._apply(client, material, dry_run=True)
            _raise_for(response, "write (server-side dry run)")
        except (httpx.HTTPError, DestinationRefused) as exc:
            return DryRunReport(
                (Check("api", False, f"cannot reach {c.api_server}: {exc}"),),
                (f"write Secret {c.namespace}/{c.name}",),
            )
        except DistributionError as exc:
            return DryRunReport(
                (Check("api", False, str(exc)),), (f"write Secret {c.namespace}/{c.name}",)
            )
        verb = "create" if verb == "created" else "update"
        keys = "tls.crt, tls.key" + (", ca.crt" if c.include_ca else "")
        return DryRunReport(
            (Check("api", True, "the API server accepted a server-side dry run"),),
            (f"{verb} Secret {c.namespace}/{c.name} ({TLS_TYPE}: {keys})",),
        )


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        message = response.json().get("message", response.text[:300])
    except ValueError:
        message = response.text[:300]
    status = response.status_code
    raise DistributionError(
        f"the Kubernetes API refused to {what} the Secret ({status}): {message}",
        retryable=status in (409, 429) or status >= 500,
    )
