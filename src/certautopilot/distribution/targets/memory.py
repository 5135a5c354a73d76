"""``memory``: the in-memory twin of a distribution target, for tests and local trials.

It honours the whole :class:`~certautopilot.distribution.interfaces.Target` contract
(see that module): a deployment replaces what the destination held, deploying the same
version again writes nothing, a dry run changes nothing, a destination that cannot be
reached fails with a retryable :class:`DistributionError`, and no key or credential
appears in a result, an error or a ``repr``. It is checked by the same conformance tests
as the real targets (tests/conformance/test_targets.py), so a unit test may use it in
place of a real server.

It is not registered as a production plugin: what it "deploys" lives only as long as
the :class:`MemoryStore` object, in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)


@dataclass(frozen=True)
class Deployed:
    """One bundle as the destination holds it."""

    certificate_id: str
    version: int
    serial: str
    fingerprint_sha256: str
    cert_pem: str
    chain_pem: str
    key_pem: str | None = field(default=None, repr=False)


@dataclass
class MemoryStore:
    """The destinations of memory targets: name → the bundle it holds now.

    ``reachable`` False makes every target on this store fail as an unreachable server
    does. ``token``, when set, is the only credential it accepts (others are refused, as
    a server refuses a wrong token). ``writes`` counts real writes (an idempotent
    re-deployment adds none).
    """

    destinations: dict[str, Deployed] = field(default_factory=dict)
    writes: int = 0
    reachable: bool = True
    token: str | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def current(self, destination: str) -> Deployed | None:
        with self.lock:
            return self.destinations.get(destination)


class MemoryConfig(BaseModel):
    """Where in the store to deploy, and whether the key goes along."""

    model_config = ConfigDict(extra="forbid")
    SECRETS: ClassVar[tuple[str, ...]] = ("token",)

    destination: str = Field(default="default", min_length=1, max_length=200)
    include_private_key: bool = True
    token: str | None = Field(
        default=None, max_length=1000, description="a stand-in credential (never shown)"
    )


class MemoryTarget:
    kind = "memory"

    def __init__(
        self, config: MemoryConfig | None = None, store: MemoryStore | None = None
    ) -> None:
        self.config = config or MemoryConfig()
        self.store = store if store is not None else MemoryStore()

    def __repr__(self) -> str:
        return f"MemoryTarget(destination={self.config.destination!r})"

    def _reach(self) -> None:
        if not self.store.reachable:
            raise DistributionError(
                f"memory destination {self.config.destination!r} is unreachable", retryable=True
            )
        if self.store.token is not None and self.config.token != self.store.token:
            raise DistributionError(
                f"memory destination {self.config.destination!r} refused the credentials"
            )

    def _bundle(self, material: Material) -> Deployed:
        key = material.require_key() if self.config.include_private_key else None
        return Deployed(
            certificate_id=material.certificate_id,
            version=material.version,
            serial=material.serial,
            fingerprint_sha256=material.fingerprint_sha256,
            cert_pem=material.cert_pem,
            chain_pem=material.chain_pem,
            key_pem=key,
        )

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        bundle = self._bundle(material)
        self._reach()
        name = self.config.destination
        with self.store.lock:
            if self.store.destinations.get(name) == bundle:
                return DeployResult(
                    actions=(f"{name} already holds serial {material.serial}",),
                    state={"serial": material.serial},
                    detail={"destination": name},
                )
            replaced = name in self.store.destinations
            self.store.destinations[name] = bundle
            self.store.writes += 1
        verb = "replaced" if replaced else "stored"
        return DeployResult(
            actions=(f"{verb} serial {material.serial} in {name}",),
            state={"serial": material.serial},
            detail={"destination": name},
        )

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        bundle = self._bundle(material)
        name = self.config.destination
        try:
            self._reach()
        except DistributionError as exc:
            return DryRunReport((Check("reachable", False, str(exc)),), (f"store in {name}",))
        current = self.store.current(name)
        would = (
            f"nothing: {name} already holds serial {material.serial}"
            if current == bundle
            else f"store serial {material.serial} in {name}"
        )
        return DryRunReport((Check("reachable", True, f"{name} is reachable"),), (would,))
