"""An in-memory twin of a hosted DNS provider, for tests (not a registered plugin).

Why: the conformance suite runs one set of cases against every provider; the twin is the
reference behaviour (idempotent publish/remove, several values per name, a token that can
be wrong) with no server, so a case that fails only on a real server points at that server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.errors import DNSError, InvalidInput
from certautopilot.plugins import secret_field


@dataclass
class MemoryDNS:
    """One fake provider account: its zones, their TXT records and the valid token."""

    token: str
    zones: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_zone(self, zone: str) -> None:
        self.zones.setdefault(_bare(zone), {})


_SERVERS: dict[str, MemoryDNS] = {}


def register(name: str, server: MemoryDNS) -> None:
    _SERVERS[name] = server


class MemoryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    account: str = Field(min_length=1, description="name of a registered in-memory account")
    token: str = secret_field(min_length=1, description="the account's API token", repr=False)


class MemoryProvider:
    name: ClassVar[str] = "memory"
    title: ClassVar[str] = "In-memory (tests)"
    config_model: ClassVar[type[MemoryConfig]] = MemoryConfig
    manual: ClassVar[bool] = False
    tested: ClassVar[bool] = True

    def __init__(self, config: MemoryConfig) -> None:
        self._config = config

    def __repr__(self) -> str:
        return f"MemoryProvider(account={self._config.account})"

    __str__ = __repr__

    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        server, records = self._zone(zone, fqdn)
        with server.lock:
            values = records.setdefault(_bare(fqdn), [])
            if value not in values:
                values.append(value)

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None:
        server, records = self._zone(zone, fqdn)
        with server.lock:
            values = records.get(_bare(fqdn), [])
            if value in values:
                values.remove(value)
            if not values:
                records.pop(_bare(fqdn), None)

    def list_txt(self, zone: str, fqdn: str) -> list[str]:
        server, records = self._zone(zone, fqdn)
        with server.lock:
            return list(records.get(_bare(fqdn), []))

    def check(self, zone: str) -> None:
        try:
            self._zone(zone, zone)
        except _Unauthorized as exc:
            raise InvalidInput.field("settings.token", str(exc)) from None

    def _zone(self, zone: str, fqdn: str) -> tuple[MemoryDNS, dict[str, list[str]]]:
        server = _SERVERS.get(self._config.account)
        if server is None:
            raise DNSError(f"no in-memory account {self._config.account!r}")
        if self._config.token != server.token:
            raise _Unauthorized("401 Unauthorized: the API token is not valid")
        records = server.zones.get(_bare(zone))
        if records is None:
            raise DNSError(f"zone {_bare(zone)} not found (404)")
        name = _bare(fqdn)
        if name != _bare(zone) and not name.endswith("." + _bare(zone)):
            raise DNSError(f"{name} is not inside zone {_bare(zone)}")
        return server, records


class _Unauthorized(DNSError):
    pass


def _bare(name: str) -> str:
    return name.rstrip(".").lower()
