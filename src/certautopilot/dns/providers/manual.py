"""The manual "provider": a person creates and deletes the TXT record.

The core sees ``manual = True``, shows the exact record, waits for the person's
confirmation and then checks the authoritative servers itself; these calls do nothing.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class ManualConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManualProvider:
    name: ClassVar[str] = "manual"
    title: ClassVar[str] = "Manual (a person creates the TXT record)"
    config_model: ClassVar[type[ManualConfig]] = ManualConfig
    manual: ClassVar[bool] = True
    tested: ClassVar[bool] = True

    def __init__(self, config: ManualConfig | None = None) -> None:
        self._config = config or ManualConfig()

    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        return None

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None:
        return None

    def list_txt(self, zone: str, fqdn: str) -> list[str]:
        """Nothing: there is no API to ask; the core queries the authoritative servers."""
        return []

    def check(self, zone: str) -> None:
        return None
