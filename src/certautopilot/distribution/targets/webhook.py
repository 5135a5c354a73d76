"""``webhook``: an HTTPS POST of the certificate, signed with HMAC-SHA256.

Headers: ``X-CertAutoPilot-Timestamp`` (Unix seconds), ``X-CertAutoPilot-Signature``
(``v1=`` + hex HMAC-SHA256 with the target's secret over ``<timestamp>.<body>``), and
``X-CertAutoPilot-Delivery`` (the same on every retry of one deployment, for receivers
to de-duplicate). Receivers should refuse timestamps older than a few minutes.

The private key is in the payload only when the target sets ``include_private_key``.
Destinations are checked before every delivery (private/loopback refused unless the
operator allowed them), and again where the socket is opened, which connects to the very
address checked (``certautopilot.outbound``); redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, model_validator

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
from certautopilot.outbound import guarded_async_transport, open_tls
from certautopilot.plugins import secret_field


class WebhookConfig(KindConfig):
    url: str = Field(min_length=8, max_length=2000)
    secret: str = secret_field(min_length=16, max_length=1000, description="HMAC-SHA256 key")
    include_private_key: bool = False
    pkcs12_password: str | None = secret_field(
        default=None,
        max_length=1000,
        description="adds a base64 PKCS#12 to the payload (needs include_private_key)",
    )
    ca_bundle_pem: str | None = Field(default=None, max_length=100_000)
    timeout_seconds: float = Field(default=15, gt=0, le=120)

    @model_validator(mode="after")
    def _p12(self) -> WebhookConfig:
        if self.pkcs12_password and not self.include_private_key:
            raise ValueError("pkcs12_password sends the key: set include_private_key")
        return self


SIGNATURE_HEADER = "X-CertAutoPilot-Signature"
TIMESTAMP_HEADER = "X-CertAutoPilot-Timestamp"
DELIVERY_HEADER = "X-CertAutoPilot-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """For receivers (and tests): constant-time comparison."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@functools.lru_cache(maxsize=64)
def tls_context(ca_bundle_pem: str | None) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_bundle_pem`` (else the system's CAs).

    Cached: loading the system store costs ~30 ms of CPU, more than a whole delivery.
    """
    if ca_bundle_pem:
        return ssl.create_default_context(cadata=ca_bundle_pem)
    return ssl.create_default_context()


class WebhookTarget:
    kind = "webhook"
    name: ClassVar[str] = "webhook"
    title: ClassVar[str] = "Signed webhook"
    config_model: ClassVar[type[WebhookConfig]] = WebhookConfig

    @classmethod
    def validate(cls, config: WebhookConfig, field: str) -> None:
        """Save-time rule: an https URL the service may reach."""
        guard.check_https(config.url, field=f"{field}.url")

    def __init__(self, config: WebhookConfig, delivery_id: str = "") -> None:
        self.config = config
        self.delivery_id = delivery_id

    def payload(self, material: Material) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event": "certificate.deployed",
            **material.public_summary(),
            "cert_pem": material.cert_pem,
            "chain_pem": material.chain_pem,
            "fullchain_pem": material.fullchain_pem,
        }
        if self.config.include_private_key:
            body["key_pem"] = material.require_key()
            if self.config.pkcs12_password:
                body["pkcs12_base64"] = base64.b64encode(
                    material.pkcs12(self.config.pkcs12_password)
                ).decode()
        return body

    def _check(self) -> None:
        try:
            guard.check_https(self.config.url, field="webhook.url")
        except InvalidInput as exc:
            raise DistributionError(str(exc)) from exc

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        self._check()
        body = json.dumps(self.payload(material), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CertAutoPilot",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.secret, timestamp, body),
            DELIVERY_HEADER: self.delivery_id,
        }
        try:
            async with httpx.AsyncClient(
                timeout=self.config.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
                transport=guarded_async_transport(verify=tls_context(self.config.ca_bundle_pem)),
            ) as client:
                response = await client.post(self.config.url, content=body, headers=headers)
        except DestinationRefused as exc:
            raise DistributionError(f"POST {_safe(self.config.url)}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise DistributionError(
                f"POST {_safe(self.config.url)} failed: {exc or type(exc).__name__}",
                retryable=True,
            ) from exc
        if not 200 <= response.status_code < 300:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            raise DistributionError(
                f"POST {_safe(self.config.url)} answered {response.status_code}: "
                f"{response.text[:500]}",
                retryable=retryable,
            )
        return DeployResult(
            actions=(
                f"POST {_safe(self.config.url)} → {response.status_code} "
                f"({len(body)} bytes, private key "
                f"{'included' if self.config.include_private_key else 'not included'})",
            ),
            detail={"status_code": response.status_code},
        )

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        fields = sorted(self.payload(material))
        would = [f"POST {_safe(self.config.url)} with fields {', '.join(fields)}, signed"]
        try:
            self._check()
        except DistributionError as exc:
            return DryRunReport((Check("destination", False, str(exc)),), tuple(would))
        parts = urlsplit(self.config.url)
        host, port = parts.hostname or "", parts.port or 443
        # A TLS handshake proves reachability and trust without sending anything.
        try:
            _, writer = await asyncio.wait_for(
                open_tls(host, port, tls_context(self.config.ca_bundle_pem)),
                self.config.timeout_seconds,
            )
            writer.close()
            check = Check("tls", True, f"TLS handshake with {host}:{port} succeeded")
        except DestinationRefused as exc:
            check = Check("destination", False, str(exc))
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            check = Check("tls", False, f"{host}:{port}: {exc or 'timeout'}")
        return DryRunReport((check,), tuple(would))


def _safe(url: str) -> str:
    """The URL without query string or credentials (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
