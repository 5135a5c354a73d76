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
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from certautopilot.errors import ConfigError
from certautopilot.netguard import Network, Reach
from certautopilot.renewal.backoff import BackoffPolicy
from certautopilot.renewal.budget import Limits

PREFIX = "CERTAUTOPILOT_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # 1 MiB
MIN_MAX_BODY_BYTES = 64 * 1024  # below this, valid forms (a CSR, a CA bundle) would not fit


class LogFormat(StrEnum):
    """How log lines look (``CERTAUTOPILOT_LOG_FORMAT``)."""

    TEXT = "text"  # one readable line per record (the default)
    JSON = "json"  # one JSON object per line, for a log shipper


class ProjectCreators(StrEnum):
    """Who may create projects (``CERTAUTOPILOT_PROJECT_CREATORS``)."""

    ADMINS = "admins"  # instance admins only (the default)
    EVERYONE = "everyone"  # any signed-in user or token holder


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    kek_b64: str | None = field(default=None, repr=False)
    kek_previous_b64: tuple[str, ...] = field(default=(), repr=False)
    #: ``CERTAUTOPILOT_KEK_BACKEND``: the KEK plugin by name (``file``, ``env``,
    #: ``transit``, ``aws-kms``, ``pkcs11``…); unset means ``env`` when
    #: ``CERTAUTOPILOT_KEK`` is set, else ``file``.
    kek_backend: str | None = None
    #: ``CERTAUTOPILOT_KEK_CONFIG``: that plugin's config, a JSON object validated by its
    #: ``config_model`` (it may hold a token or a PIN, so it is never shown).
    kek_config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: ``CERTAUTOPILOT_KEK_PREVIOUS_BACKEND`` / ``..._PREVIOUS_CONFIG``: while moving to
    #: another backend, the one the data keys come from. It only unwraps; ``kek rotate``
    #: moves every data key to the active backend, after which it can go.
    kek_previous_backend: str | None = None
    kek_previous_config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    executor_id: str = field(default_factory=socket.gethostname)
    application_version: str = "certautopilot-1"
    issuance_concurrency: int = 16
    #: How often each worker asks the issuance queue for work (DBOS queues poll; there is
    #: no wake-up on enqueue): shorter starts a request sooner, and costs every idle worker
    #: CPU and the database queries (bench/scale_out.py measures it).
    issuance_polling_seconds: float = 0.2
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
    #: A web session unused this long ends (``CERTAUTOPILOT_SESSION_IDLE_MINUTES``).
    session_idle_minutes: int = 30
    #: Sign-in throttle (``auth.throttle``): failures per account and per client address
    #: before a lockout, and the lockout's first and longest duration.
    signin_account_failures: int = 5
    signin_address_failures: int = 20
    signin_lockout_seconds: float = 30.0
    signin_lockout_max_seconds: float = 900.0
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    #: How often every worker process writes its row in ``worker_heartbeats``.
    worker_heartbeat_seconds: float = 10.0
    #: A worker whose heartbeat is older than this counts as gone (``/readyz``; the
    #: recovery of a dead worker's workflows, issue 13, reads the same setting).
    worker_stale_seconds: float = 30.0
    #: Where the processes of one host keep their Prometheus counters
    #: (prometheus-client's multiprocess mode); ``/metrics`` adds them up.
    metrics_dir: Path = Path("./data/metrics")
    #: A bearer token ``/metrics`` asks for (None: it answers anyone who reaches it).
    metrics_token: str | None = field(default=None, repr=False)
    #: ``host:port`` of a separate listener for ``/metrics`` (then the main port has none).
    metrics_address: tuple[str, int] | None = None
    distribution_concurrency: int = 16
    #: PostgreSQL connections of one process (API or worker): the pool keeps ``db_pool_size``
    #: and opens at most ``db_max_overflow`` more; a caller then waits up to
    #: ``db_pool_timeout_seconds`` (the API answers 503). A worker adds DBOS's notification
    #: listener (one). The README's "Database connections" has the budget.
    db_pool_size: int = 5
    db_max_overflow: int = 3
    db_pool_timeout_seconds: float = 30.0
    #: Connected through PgBouncer in transaction pooling: no server-side prepared statements
    #: and no LISTEN/NOTIFY (DBOS polls). Set it before the database is first migrated.
    db_pgbouncer: bool = False
    renewal_tick_seconds: int = 30
    #: How long a renewal tick's lease outlives its last step: a tick of a worker that died
    #: holds later ticks back for at most this long (``renewal/lease.py``).
    renewal_tick_lease_seconds: int = 300
    renewal_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    #: Moves the renewal scheduler's clock (tests bring renewals forward with it).
    clock_offset_seconds: float = 0.0
    #: Crash tests: the pause point a worker stops at, and the file it writes there.
    fault_pause: str | None = None
    fault_marker: Path | None = None
    project_creators: ProjectCreators = ProjectCreators.ADMINS
    #: How long an ``Idempotency-Key`` of a certificate request is remembered.
    idempotency_key_ttl: timedelta = timedelta(hours=24)
    #: The largest request body the HTTP server takes (``api.http_guard``); the largest
    #: valid request (an AD CS issuer with its PEM fields full) is under half of the default.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: A signed checkpoint of a project's audit chain every this many events (``audit/chain.py``).
    audit_checkpoint_every: int = 1000
    #: Where audit events are forwarded as RFC 5424 syslog: ``udp://host:port`` or ``tcp://``.
    audit_syslog: str | None = None

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
        heartbeat = _float(env, "WORKER_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
        return cls(
            data_dir=data_dir,
            database_url=_database_url(env, data_dir),
            kek_b64=env.get(PREFIX + "KEK") or None,
            kek_previous_b64=tuple(p for p in env.get(PREFIX + "KEK_PREVIOUS", "").split(",") if p),
            kek_backend=(env.get(PREFIX + "KEK_BACKEND") or "").strip() or None,
            kek_config=_json_object(env, "KEK_CONFIG"),
            kek_previous_backend=(env.get(PREFIX + "KEK_PREVIOUS_BACKEND") or "").strip() or None,
            kek_previous_config=_json_object(env, "KEK_PREVIOUS_CONFIG"),
            executor_id=env.get(PREFIX + "EXECUTOR_ID") or socket.gethostname(),
            issuance_concurrency=_int(env, "ISSUANCE_CONCURRENCY", 16, minimum=1),
            issuance_polling_seconds=_float(env, "ISSUANCE_POLLING_SECONDS", 0.2, minimum=0.01),
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
            session_idle_minutes=_int(env, "SESSION_IDLE_MINUTES", 30, minimum=1),
            signin_account_failures=_int(env, "SIGNIN_ACCOUNT_FAILURES", 5, minimum=1),
            signin_address_failures=_int(env, "SIGNIN_ADDRESS_FAILURES", 20, minimum=1),
            signin_lockout_seconds=_float(env, "SIGNIN_LOCKOUT_SECONDS", 30.0, minimum=1),
            signin_lockout_max_seconds=_float(env, "SIGNIN_LOCKOUT_MAX_SECONDS", 900.0, minimum=1),
            log_level=_log_level(env),
            log_format=_log_format(env),
            worker_heartbeat_seconds=heartbeat,
            worker_stale_seconds=_float(
                env, "WORKER_STALE_SECONDS", 3 * heartbeat, minimum=heartbeat
            ),
            metrics_dir=Path(env.get(PREFIX + "METRICS_DIR") or data_dir / "metrics").resolve(),
            metrics_token=env.get(PREFIX + "METRICS_TOKEN") or None,
            metrics_address=_address(env, "METRICS_ADDRESS"),
            distribution_concurrency=_int(env, "DISTRIBUTION_CONCURRENCY", 16, minimum=1),
            db_pool_size=_int(env, "DB_POOL_SIZE", 5, minimum=1),
            db_max_overflow=_int(env, "DB_MAX_OVERFLOW", 3, minimum=0),
            db_pool_timeout_seconds=_float(env, "DB_POOL_TIMEOUT_SECONDS", 30.0, minimum=0.1),
            db_pgbouncer=_bool(env, "DB_PGBOUNCER"),
            renewal_tick_seconds=_int(env, "RENEWAL_TICK_SECONDS", 30, minimum=1),
            renewal_tick_lease_seconds=_int(env, "RENEWAL_TICK_LEASE_SECONDS", 300, minimum=5),
            renewal_backoff=BackoffPolicy(
                base_seconds=_float(env, "RENEWAL_BACKOFF_BASE_SECONDS", 300.0, minimum=0),
                cap_seconds=_float(env, "RENEWAL_BACKOFF_CAP_SECONDS", 6 * 3600.0, minimum=0),
                max_attempts=_int(env, "RENEWAL_MAX_ATTEMPTS", 5, minimum=1),
            ),
            clock_offset_seconds=_float(env, "CLOCK_OFFSET_SECONDS", 0.0),
            fault_pause=env.get(PREFIX + "FAULT_PAUSE") or None,
            fault_marker=Path(m) if (m := env.get(PREFIX + "FAULT_MARKER")) else None,
            project_creators=_project_creators(env),
            idempotency_key_ttl=timedelta(hours=_int(env, "IDEMPOTENCY_KEY_HOURS", 24, minimum=1)),
            max_body_bytes=_int(
                env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=MIN_MAX_BODY_BYTES
            ),
            audit_checkpoint_every=_int(env, "AUDIT_CHECKPOINT_EVERY", 1000, minimum=1),
            audit_syslog=_syslog(env),
        )


def _syslog(env: Mapping[str, str]) -> str | None:
    value = (env.get(PREFIX + "AUDIT_SYSLOG") or "").strip()
    if not value:
        return None
    scheme, _, rest = value.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in ("udp", "tcp") or not host or not port.isdigit():
        raise ConfigError(
            f"{PREFIX}AUDIT_SYSLOG must be udp://host:port or tcp://host:port, got {value!r}"
        )
    return value


def child_environ(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child ``certautopilot`` process (``serve``'s workers, the
    demo's server): this process's own, with ``overrides``; the child builds its own
    :class:`Settings` from it."""
    return {**os.environ, **(overrides or {})}


#: The variable prometheus-client reads (itself) to find the multiprocess directory.
PROMETHEUS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def export_metrics_dir(settings: Settings) -> None:
    """Points this process's prometheus-client at ``settings.metrics_dir``: the library
    reads the directory from its own environment variable when it opens its files, so the
    variable is set here, the one module that touches ``os.environ``."""
    settings.metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ[PROMETHEUS_DIR_VARIABLE] = str(settings.metrics_dir)


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


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(PREFIX + name) or ""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        # The text may hold a secret: the message names the position, not the content.
        raise ConfigError(f"{PREFIX}{name} is not valid JSON ({exc.msg} at {exc.pos})") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{PREFIX}{name} must be a JSON object")
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


def _project_creators(env: Mapping[str, str]) -> ProjectCreators:
    raw = (env.get(PREFIX + "PROJECT_CREATORS") or ProjectCreators.ADMINS).strip().lower()
    try:
        return ProjectCreators(raw)
    except ValueError:
        choices = " or ".join(c.value for c in ProjectCreators)
        raise ConfigError(f"{PREFIX}PROJECT_CREATORS must be {choices}, not {raw!r}") from None


def _log_format(env: Mapping[str, str]) -> LogFormat:
    raw = (env.get(PREFIX + "LOG_FORMAT") or LogFormat.TEXT).strip().lower()
    try:
        return LogFormat(raw)
    except ValueError:
        choices = " or ".join(f.value for f in LogFormat)
        raise ConfigError(f"{PREFIX}LOG_FORMAT must be {choices}, not {raw!r}") from None


def _address(env: Mapping[str, str], name: str) -> tuple[str, int] | None:
    raw = (env.get(PREFIX + name) or "").strip()
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{PREFIX}{name} must be host:port (e.g. 127.0.0.1:9464), not {raw!r}")
    return host.strip("[]"), int(port)


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


@dataclass(frozen=True)
class ClientSettings:
    """What the remote CLI commands (``certs``, ``issuers``, ...) read from the environment:
    the service's URL, an API token and a default project, each overriding what
    ``certautopilot login`` stored in ``login_file``."""

    url: str | None
    token: str | None
    project: str | None
    login_file: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if environ is None else environ
        explicit = env.get(PREFIX + "LOGIN_FILE")
        if explicit:
            login_file = Path(explicit)
        else:
            base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
            login_file = Path(base) / "certautopilot" / "login.json"
        return cls(
            url=env.get(PREFIX + "URL") or None,
            token=env.get(PREFIX + "TOKEN") or None,
            project=env.get(PREFIX + "PROJECT") or None,
            login_file=login_file,
        )
