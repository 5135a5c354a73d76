"""What a running lab is: the value object written to ``<base_dir>/lab.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAB_FILE = "lab.json"
ENV_PREFIX = "CERTAUTOPILOT_LAB_"

#: Pebble enforces no rate limits. A service that only talks to the lab (the tests, the
#: benchmarks) still counts every order, but with limits no run reaches; the tests of the
#: budget set small ones explicitly.
UNLIMITED_BUDGET_ENV = {
    "CERTAUTOPILOT_RENEWAL_ORDERS_PER_ACCOUNT": "1000000",
    "CERTAUTOPILOT_RENEWAL_CERTS_PER_DOMAIN": "1000000",
    "CERTAUTOPILOT_RENEWAL_DUPLICATE_CERTS": "1000000",
}
TSIG_NAME = "acme-key."
TSIG_ALGORITHM = "hmac-sha256"
ZONES: tuple[str, ...] = ("example.test", "sub.example.test", "manual.test")


@dataclass(frozen=True)
class LabInfo:
    """A started lab: where it listens, how to trust it, how to update its zones.

    ``tsig_secret`` is the lab's own throw-away key; ``lab.json`` is written 0600.
    """

    base_dir: Path
    dns_port: int
    acme_port: int
    mgmt_port: int
    ca_bundle_path: Path
    tsig_secret: str
    named_pid: int
    pebble_pid: int
    dns_host: str = "127.0.0.1"
    tsig_name: str = TSIG_NAME
    tsig_algorithm: str = TSIG_ALGORITHM
    zones: tuple[str, ...] = ZONES
    cert_validity_seconds: int = 7776000
    eab_required: bool = False
    eab_keys: tuple[tuple[str, str], ...] = field(default=())
    nonce_reject_percent: int = 0

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def mgmt_url(self) -> str:
        return f"https://127.0.0.1:{self.mgmt_port}"

    @property
    def dns_server(self) -> tuple[str, int]:
        return (self.dns_host, self.dns_port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_dir": str(self.base_dir),
            "dns_host": self.dns_host,
            "dns_port": self.dns_port,
            "acme_port": self.acme_port,
            "mgmt_port": self.mgmt_port,
            "directory_url": self.directory_url,
            "ca_bundle_path": str(self.ca_bundle_path),
            "tsig_name": self.tsig_name,
            "tsig_algorithm": self.tsig_algorithm,
            "tsig_secret": self.tsig_secret,
            "zones": list(self.zones),
            "named_pid": self.named_pid,
            "pebble_pid": self.pebble_pid,
            "cert_validity_seconds": self.cert_validity_seconds,
            "eab_required": self.eab_required,
            "eab_keys": dict(self.eab_keys),
            "nonce_reject_percent": self.nonce_reject_percent,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LabInfo:
        raw = json.loads(text)
        return cls(
            base_dir=Path(raw["base_dir"]),
            dns_host=str(raw.get("dns_host", "127.0.0.1")),
            dns_port=int(raw["dns_port"]),
            acme_port=int(raw["acme_port"]),
            mgmt_port=int(raw["mgmt_port"]),
            ca_bundle_path=Path(raw["ca_bundle_path"]),
            tsig_name=str(raw.get("tsig_name", TSIG_NAME)),
            tsig_algorithm=str(raw.get("tsig_algorithm", TSIG_ALGORITHM)),
            tsig_secret=str(raw["tsig_secret"]),
            zones=tuple(str(z) for z in raw.get("zones", ZONES)),
            named_pid=int(raw["named_pid"]),
            pebble_pid=int(raw["pebble_pid"]),
            cert_validity_seconds=int(raw.get("cert_validity_seconds", 7776000)),
            eab_required=bool(raw.get("eab_required", False)),
            eab_keys=tuple(sorted((str(k), str(v)) for k, v in raw.get("eab_keys", {}).items())),
            nonce_reject_percent=int(raw.get("nonce_reject_percent", 0)),
        )

    def env(self) -> dict[str, str]:
        """``CERTAUTOPILOT_LAB_*`` variables describing this lab (for demo scripts and tests)."""
        values = {
            "DIR": str(self.base_dir),
            "DNS_HOST": self.dns_host,
            "DNS_PORT": str(self.dns_port),
            "DNS_SERVER": f"{self.dns_host}:{self.dns_port}",
            "ACME_PORT": str(self.acme_port),
            "MGMT_PORT": str(self.mgmt_port),
            "DIRECTORY_URL": self.directory_url,
            "CA_BUNDLE": str(self.ca_bundle_path),
            "TSIG_NAME": self.tsig_name,
            "TSIG_ALGORITHM": self.tsig_algorithm,
            "TSIG_SECRET": self.tsig_secret,
            "ZONES": ",".join(self.zones),
        }
        return {ENV_PREFIX + key: value for key, value in values.items()}
