"""What workflow steps need in the worker process: settings, database, KEK, clients.

DBOS workflows are registered functions taking only ids, so the worker sets this once at
start and steps read it. Nothing here is pickled into step data.

Clients are cached per worker (an ACME account's client, an AD CS connection, a zone's DNS
provider) under the row's id *and* a fingerprint of its settings and secret ids: an issuer
or zone edited through the API gets a fresh client on its next use in every worker, and the
old one is dropped. Nobody has to remember to invalidate anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.dns.interfaces import DNSProvider
from certautopilot.errors import ConfigError
from certautopilot.issuers.interfaces import CertificateAuthority

if TYPE_CHECKING:
    from certautopilot.workflows.launcher import DbosLauncher

T = TypeVar("T")


class ClientCache(Generic[T]):
    """id -> (fingerprint, client); a different fingerprint replaces the entry. Thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, fingerprint: str, make: Callable[[], T]) -> T:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == fingerprint:
                return hit[1]
        made = make()  # may do I/O (a name-server look-up): outside the lock
        with self._lock:
            self._entries[key] = (fingerprint, made)
        return made

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class ZoneHandle:
    """A zone's provider (credentials in memory) and where to check its records."""

    name: str
    provider: DNSProvider
    nameservers: tuple[tuple[str, int], ...]
    propagation_timeout: int


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    kek: KeyEncryptionKey
    launcher: DbosLauncher | None = None
    issuers: ClientCache[CertificateAuthority] = field(default_factory=ClientCache)
    zones: ClientCache[ZoneHandle] = field(default_factory=ClientCache)


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def runtime() -> Runtime:
    if _current is None:
        raise ConfigError("the worker runtime is not set up (call set_runtime at start)")
    return _current


def launcher() -> DbosLauncher:
    """The worker's DBOS client, for enqueueing in a step's transaction."""
    found = runtime().launcher
    if found is None:
        raise ConfigError("the worker's launcher is not set up yet")
    return found
