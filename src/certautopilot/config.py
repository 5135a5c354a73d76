"""One settings object, read from the environment (``CERTAUTOPILOT_*``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from certautopilot.errors import ConfigError
from certautopilot.renewal.budget import Limits


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    kek_b64: str | None = None
    kek_previous_b64: tuple[str, ...] = ()
    executor_id: str = field(default_factory=socket.gethostname)
    application_version: str = "certautopilot-1"
    issuance_concurrency: int = 16
    public_url: str = "http://127.0.0.1:8000"
    sqlite_busy_timeout: float = 15.0
    rate_limits: Limits = field(default_factory=Limits)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("CERTAUTOPILOT_DATA_DIR", "./data")).resolve()
        url = env.get("CERTAUTOPILOT_DATABASE_URL") or f"sqlite:///{data_dir / 'certautopilot.db'}"
        if not (url.startswith("sqlite") or url.startswith("postgresql")):
            raise ConfigError(
                "CERTAUTOPILOT_DATABASE_URL must be an sqlite:// or postgresql:// URL"
            )
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        previous = tuple(p for p in env.get("CERTAUTOPILOT_KEK_PREVIOUS", "").split(",") if p)
        try:
            concurrency = int(env.get("CERTAUTOPILOT_ISSUANCE_CONCURRENCY", "16"))
        except ValueError as exc:
            raise ConfigError("CERTAUTOPILOT_ISSUANCE_CONCURRENCY must be a whole number") from exc
        try:
            busy = float(env.get("CERTAUTOPILOT_SQLITE_BUSY_TIMEOUT_SECONDS", "15"))
        except ValueError as exc:
            raise ConfigError("CERTAUTOPILOT_SQLITE_BUSY_TIMEOUT_SECONDS must be a number") from exc
        return cls(
            data_dir=data_dir,
            database_url=url,
            kek_b64=env.get("CERTAUTOPILOT_KEK") or None,
            kek_previous_b64=previous,
            executor_id=env.get("CERTAUTOPILOT_EXECUTOR_ID") or socket.gethostname(),
            issuance_concurrency=concurrency,
            public_url=env.get("CERTAUTOPILOT_PUBLIC_URL", "http://127.0.0.1:8000"),
            sqlite_busy_timeout=busy,
            rate_limits=_limits(env),
        )


def _limits(env: Mapping[str, str]) -> Limits:
    try:
        return Limits.from_env(env)
    except ValueError as exc:
        raise ConfigError(f"a CERTAUTOPILOT_RENEWAL_* rate-limit setting: {exc}") from exc
