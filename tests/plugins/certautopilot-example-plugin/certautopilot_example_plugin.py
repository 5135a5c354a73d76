"""Example CertAutoPilot plugins, written only against the published contracts.

``ExampleDNSProvider`` follows ``certautopilot.dns.interfaces.DNSProvider`` and keeps its
records in memory; ``ExampleTarget`` follows ``certautopilot.distribution.interfaces.Target``
and delivers nowhere. Their config models mark the secret fields with ``secret_field``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.errors import InvalidInput
from certautopilot.plugins import secret_field

_RECORDS: dict[str, list[str]] = {}


class ExampleDNSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    endpoint: str = Field(min_length=1, description="where the example DNS API lives")
    api_token: str = secret_field(min_length=1, repr=False, description="the API token")


class ExampleDNSProvider:
    name: ClassVar[str] = "example-dns"
    title: ClassVar[str] = "Example DNS (in memory)"
    config_model: ClassVar[type[ExampleDNSConfig]] = ExampleDNSConfig
    manual: ClassVar[bool] = False
    tested: ClassVar[bool] = False

    def __init__(self, config: ExampleDNSConfig) -> None:
        self.config = config

    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        values = _RECORDS.setdefault(fqdn, [])
        if value not in values:
            values.append(value)

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None:
        if value in _RECORDS.get(fqdn, []):
            _RECORDS[fqdn].remove(value)

    def list_txt(self, zone: str, fqdn: str) -> list[str]:
        return list(_RECORDS.get(fqdn, []))

    def check(self, zone: str) -> None:
        if self.config.api_token == "wrong":
            raise InvalidInput.field("settings.api_token", "the example API says: bad token")


class ExampleTargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    label: str = Field(min_length=1, description="a name for the place it delivers to")
    password: str = secret_field(min_length=1, repr=False, description="a credential")


class ExampleTarget:
    kind = "example-target"
    name: ClassVar[str] = "example-target"
    title: ClassVar[str] = "Example target (delivers nowhere)"
    config_model: ClassVar[type[ExampleTargetConfig]] = ExampleTargetConfig

    def __init__(self, config: ExampleTargetConfig) -> None:
        self.config = config

    @classmethod
    def validate(cls, config: ExampleTargetConfig, field: str) -> None:
        if config.label == "forbidden":
            raise InvalidInput.field(f"{field}.label", "is not allowed")

    async def deploy(self, material: Any, state: Mapping[str, Any]) -> Any:
        raise NotImplementedError("the example target delivers nowhere")

    async def dry_run(self, material: Any, state: Mapping[str, Any]) -> Any:
        raise NotImplementedError("the example target delivers nowhere")
