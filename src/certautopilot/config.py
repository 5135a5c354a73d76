"""One settings object, read from the environment (``CERTAUTOPILOT_*``).

This is the only module that reads ``os.environ`` (tests/unit/test_config.py greps the
package for it). Everything else gets a :class:`Settings`, or the one value it needs,
from where the app (``app.create_app``), the worker (``workflows.worker.start_worker``) or
a CLI command is built. Each variable is parsed here once, at start, and a bad value is a
:class:`~certautopilot.errors.ConfigError` naming the variable, not a crash later in a
request or a workflow step.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from certautopilot.errors import ConfigError
from certautopilot.netguard import Network, Reach
from certautopilot.renewal.backoff import BackoffPolicy
from certautopilot.renewal.budget import Limits

PREFIX = "CERTAUTOPILOT_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    kek_b64: str | None = field(default=None, repr=False)
    kek_previous_b64: tuple[str, ...] = field(default=(), repr=False)
    executor_id: str = field(default_factory=socket.gethostname)
    application_version: str = "certautopilot-1"
    issuance_concurrency: int = 16
    public_url: str = "http://127.0.0.1:8000"
    sqlite_busy_timeout: float = 15.0
    rate_limits: Limits = field(default_factory=Limits)
    #: Private networks user-supplied hosts and URLs may reach (``netguard``).
    allowed_private_networks: tuple[Network, ...] = ()
    #: Directories on the service's host that targets may write under (none by default).
    local_target_roots: tuple[Path, ...] = ()
    #: Whether targets may run a reload command on the service's host.
    local_target_commands: bool = False
    #: The web session signing key; None: a random key kept in the data dir.
    session_secret: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    distribution_concurrency: int = 16
    renewal_tick_seconds: int = 30
    renewal_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    #: Moves the renewal scheduler's clock (tests bring renewals forward with it).
    clock_offset_seconds: float = 0.0
    #: Crash tests: the pause point a worker stops at, and the file it writes there.
    fault_pause: str | None = None
    fault_marker: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def reach(self) -> Reach:
        """What user-supplied destinations may reach (installed by the app and the worker)."""
        return Reach(
            private_networks=self.allowed_private_networks,
            local_roots=self.local_target_roots,
            local_commands=self.local_target_commands,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get(PREFIX + "DATA_DIR") or "./data").resolve()
        return cls(
            data_dir=data_dir,
            database_url=_database_url(env, data_dir),
            kek_b64=env.get(PREFIX + "KEK") or None,
            kek_previous_b64=tuple(p for p in env.get(PREFIX + "KEK_PREVIOUS", "").split(",") if p),
            executor_id=env.get(PREFIX + "EXECUTOR_ID") or socket.gethostname(),
            issuance_concurrency=_int(env, "ISSUANCE_CONCURRENCY", 16, minimum=1),
            public_url=env.get(PREFIX + "PUBLIC_URL") or "http://127.0.0.1:8000",
            sqlite_busy_timeout=_float(env, "SQLITE_BUSY_TIMEOUT_SECONDS", 15.0, minimum=0),
            rate_limits=_limits(env),
            allowed_private_networks=_networks(env),
            local_target_roots=tuple(
                Path(p.strip()).resolve()
                for p in env.get(PREFIX + "LOCAL_TARGET_ROOTS", "").split(":")
                if p.strip()
            ),
            local_target_commands=_bool(env, "LOCAL_TARGET_COMMANDS"),
            session_secret=env.get(PREFIX + "SESSION_SECRET") or None,
            log_level=_log_level(env),
            distribution_concurrency=_int(env, "DISTRIBUTION_CONCURRENCY", 16, minimum=1),
            renewal_tick_seconds=_int(env, "RENEWAL_TICK_SECONDS", 30, minimum=1),
            renewal_backoff=BackoffPolicy(
                base_seconds=_float(env, "RENEWAL_BACKOFF_BASE_SECONDS", 300.0, minimum=0),
                cap_seconds=_float(env, "RENEWAL_BACKOFF_CAP_SECONDS", 6 * 3600.0, minimum=0),
                max_attempts=_int(env, "RENEWAL_MAX_ATTEMPTS", 5, minimum=1),
            ),
            clock_offset_seconds=_float(env, "CLOCK_OFFSET_SECONDS", 0.0),
            fault_pause=env.get(PREFIX + "FAULT_PAUSE") or None,
            fault_marker=Path(m) if (m := env.get(PREFIX + "FAULT_MARKER")) else None,
        )


def child_environ(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child ``certautopilot`` process (``serve``'s workers, the
    demo's server): this process's own, with ``overrides``; the child builds its own
    :class:`Settings` from it."""
    return {**os.environ, **(overrides or {})}


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    url = env.get(PREFIX + "DATABASE_URL") or f"sqlite:///{data_dir / 'certautopilot.db'}"
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(f"{PREFIX}DATABASE_URL must be an sqlite:// or postgresql:// URL")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(PREFIX + name) or ""
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}{name} must be a whole number, not {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ConfigError(f"{PREFIX}{name} must be at least {minimum}, not {value}")
    return value


def _float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None
) -> float:
    raw = env.get(PREFIX + name) or ""
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}{name} must be a number, not {raw!r}") from exc
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        raise ConfigError(f"{PREFIX}{name} must be a finite number, not {raw!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{PREFIX}{name} must be at least {minimum:g}, not {value:g}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{PREFIX}{name} must be 1/true/yes or 0/false/no, not {raw!r}")


def _networks(env: Mapping[str, str]) -> tuple[Network, ...]:
    name = PREFIX + "ALLOWED_PRIVATE_NETWORKS"
    networks: list[Network] = []
    for part in env.get(name, "").split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"{name}: {part.strip()!r} is not a network (write e.g. 10.0.0.0/8,fd00::/8)"
            ) from exc
    return tuple(networks)


def _log_level(env: Mapping[str, str]) -> str:
    raw = (env.get(PREFIX + "LOG_LEVEL") or "INFO").strip().upper()
    if raw not in LOG_LEVELS:
        raise ConfigError(f"{PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {raw!r}")
    return raw


def _limits(env: Mapping[str, str]) -> Limits:
    """The rate-limit budget (``CERTAUTOPILOT_RENEWAL_*``), see ``renewal.budget``."""
    share = _float(env, "RENEWAL_BUDGET_SHARE", 0.9, minimum=0)
    if share > 1:
        raise ConfigError(f"{PREFIX}RENEWAL_BUDGET_SHARE must be at most 1, not {share:g}")

    def window(name: str, default: float) -> timedelta:
        return timedelta(seconds=_float(env, name, default, minimum=1))

    return Limits(
        orders_per_account=_int(env, "RENEWAL_ORDERS_PER_ACCOUNT", 300, minimum=1),
        account_window=window("RENEWAL_ACCOUNT_WINDOW_SECONDS", 3 * 3600),
        certs_per_domain=_int(env, "RENEWAL_CERTS_PER_DOMAIN", 50, minimum=1),
        domain_window=window("RENEWAL_DOMAIN_WINDOW_SECONDS", 7 * 86400),
        duplicate_certs=_int(env, "RENEWAL_DUPLICATE_CERTS", 5, minimum=1),
        duplicate_window=window("RENEWAL_DUPLICATE_WINDOW_SECONDS", 7 * 86400),
        share=share,
    )
