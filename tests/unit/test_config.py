"""Settings: every ``CERTAUTOPILOT_*`` variable parsed once, in config.py, and nowhere else."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path

import pytest

import certautopilot
from certautopilot.config import Settings
from certautopilot.errors import ConfigError
from certautopilot.renewal.backoff import BackoffPolicy
from certautopilot.renewal.budget import Limits

P = "CERTAUTOPILOT_"


def load(**env: str) -> Settings:
    return Settings.from_env({P + k: v for k, v in env.items()})


def test_defaults_with_an_empty_environment(tmp_path: Path) -> None:
    s = load(DATA_DIR=str(tmp_path))
    assert s.data_dir == tmp_path.resolve()
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'certautopilot.db'}"
    assert s.kek_b64 is None and s.kek_previous_b64 == ()
    assert s.issuance_concurrency == 16 and s.distribution_concurrency == 16
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.sqlite_busy_timeout == 15.0
    assert s.rate_limits == Limits()
    assert s.allowed_private_networks == () and s.local_target_roots == ()
    assert s.local_target_commands is False
    assert s.session_secret is None
    assert s.log_level == "INFO"
    assert s.renewal_tick_seconds == 30
    assert s.renewal_backoff == BackoffPolicy()
    assert s.clock_offset_seconds == 0.0
    assert s.fault_pause is None and s.fault_marker is None
    assert s.max_body_bytes == 1024 * 1024


def test_empty_values_mean_the_default() -> None:
    names = ("ISSUANCE_CONCURRENCY", "RENEWAL_TICK_SECONDS", "LOG_LEVEL", "CLOCK_OFFSET_SECONDS")
    assert load(**dict.fromkeys(names, "")) == load()


def test_every_setting_is_read(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    s = load(
        DATA_DIR=str(tmp_path),
        DATABASE_URL="postgresql://cap@db.internal/cap",
        KEK="a2Vr",
        KEK_PREVIOUS="b2xk,b2xkZXI=",
        EXECUTOR_ID="worker-7",
        ISSUANCE_CONCURRENCY="4",
        PUBLIC_URL="https://certs.example.test",
        SQLITE_BUSY_TIMEOUT_SECONDS="2.5",
        ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8, 10.1.2.3/16,fd00::/8",
        LOCAL_TARGET_ROOTS=f"{tmp_path}/a:{tmp_path}/b",
        LOCAL_TARGET_COMMANDS="yes",
        SESSION_SECRET="s3cret",
        LOG_LEVEL="debug",
        DISTRIBUTION_CONCURRENCY="3",
        RENEWAL_TICK_SECONDS="1",
        RENEWAL_BACKOFF_BASE_SECONDS="1",
        RENEWAL_BACKOFF_CAP_SECONDS="60",
        RENEWAL_MAX_ATTEMPTS="2",
        CLOCK_OFFSET_SECONDS="-86400.5",
        FAULT_PAUSE="after_order",
        FAULT_MARKER=str(marker),
        MAX_BODY_BYTES="200000",
    )
    assert s.database_url == "postgresql+psycopg://cap@db.internal/cap" and not s.is_sqlite
    assert s.kek_b64 == "a2Vr" and s.kek_previous_b64 == ("b2xk", "b2xkZXI=")
    assert s.executor_id == "worker-7"
    assert s.issuance_concurrency == 4 and s.distribution_concurrency == 3
    assert s.public_url == "https://certs.example.test"
    assert s.sqlite_busy_timeout == 2.5
    assert s.allowed_private_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.1.0.0/16"),  # host bits are tolerated
        ipaddress.ip_network("fd00::/8"),
    )
    assert s.local_target_roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert s.local_target_commands is True
    assert s.reach.private_networks == s.allowed_private_networks
    assert s.reach.local_roots == s.local_target_roots and s.reach.local_commands
    assert s.session_secret == "s3cret"
    assert s.log_level == "DEBUG"
    assert s.renewal_tick_seconds == 1
    assert s.renewal_backoff == BackoffPolicy(base_seconds=1, cap_seconds=60, max_attempts=2)
    assert s.clock_offset_seconds == -86400.5
    assert s.fault_pause == "after_order" and s.fault_marker == marker
    assert s.max_body_bytes == 200_000


def test_rate_limits() -> None:
    limits = load(
        RENEWAL_DUPLICATE_CERTS="2",
        RENEWAL_DUPLICATE_WINDOW_SECONDS="3600",
        RENEWAL_ORDERS_PER_ACCOUNT="7",
        RENEWAL_ACCOUNT_WINDOW_SECONDS="60",
        RENEWAL_CERTS_PER_DOMAIN="9",
        RENEWAL_DOMAIN_WINDOW_SECONDS="120",
        RENEWAL_BUDGET_SHARE="1",
    ).rate_limits
    assert limits == Limits(
        orders_per_account=7,
        account_window=timedelta(minutes=1),
        certs_per_domain=9,
        domain_window=timedelta(minutes=2),
        duplicate_certs=2,
        duplicate_window=timedelta(hours=1),
        share=1.0,
    )


def test_secrets_stay_out_of_the_repr() -> None:
    text = repr(load(KEK="a2V5LWtleS1rZXk=", KEK_PREVIOUS="b2xkLW9sZA==", SESSION_SECRET="hush"))
    assert "a2V5LWtleS1rZXk=" not in text and "b2xkLW9sZA==" not in text and "hush" not in text


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x", "sqlite:// or postgresql://"),
        ("ISSUANCE_CONCURRENCY", "many", "whole number"),
        ("ISSUANCE_CONCURRENCY", "0", "at least 1"),
        ("DISTRIBUTION_CONCURRENCY", "2.5", "whole number"),
        ("SQLITE_BUSY_TIMEOUT_SECONDS", "soon", "a number"),
        ("SQLITE_BUSY_TIMEOUT_SECONDS", "-1", "at least 0"),
        ("ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8,lan", "'lan' is not a network"),
        ("LOCAL_TARGET_COMMANDS", "maybe", "1/true/yes or 0/false/no"),
        ("LOG_LEVEL", "chatty", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("RENEWAL_TICK_SECONDS", "0", "at least 1"),
        ("RENEWAL_BACKOFF_BASE_SECONDS", "nan", "finite"),
        ("RENEWAL_MAX_ATTEMPTS", "0", "at least 1"),
        ("CLOCK_OFFSET_SECONDS", "tomorrow", "a number"),
        ("RENEWAL_ORDERS_PER_ACCOUNT", "lots", "whole number"),
        ("RENEWAL_DOMAIN_WINDOW_SECONDS", "0", "at least 1"),
        ("RENEWAL_BUDGET_SHARE", "1.5", "at most 1"),
        ("MAX_BODY_BYTES", "1MB", "whole number"),
        ("MAX_BODY_BYTES", "1000", "at least 65536"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(**{name: value})
    assert str(caught.value).startswith(P + name)
    assert message in str(caught.value)


# -- nothing else reads the environment ---------------------------------------------------

ENVIRON = re.compile(r"\bos\.environ\b|\bos\.getenv\b|\benviron\.get\b|\bgetenv\(|from os import")
PACKAGE = Path(certautopilot.__file__).parent


def test_only_config_reads_the_environment() -> None:
    """Settings come in from where the app, the worker or a command is built; a module
    reading ``os.environ`` by itself is configuration nobody can see or test (``lab/`` is
    the test double, not the product, and sets up child processes' environments)."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "config.py" and "lab" not in path.relative_to(PACKAGE).parts[:1]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ENVIRON.search(line)
    ]
    assert not offenders, "read the environment outside config.py:\n" + "\n".join(offenders)


def test_the_grep_finds_what_it_is_meant_to() -> None:
    for line in ('x = os.environ.get("A")', "os.getenv('A')", "from os import environ"):
        assert ENVIRON.search(line)
    assert not ENVIRON.search("settings.environment_name")


def test_operations_settings(tmp_path: Path) -> None:
    from certautopilot.config import LogFormat

    s = load(DATA_DIR=str(tmp_path))
    assert s.log_format == LogFormat.TEXT
    assert s.worker_heartbeat_seconds == 10.0 and s.worker_stale_seconds == 30.0
    assert s.metrics_dir == tmp_path.resolve() / "metrics"
    assert s.metrics_token is None and s.metrics_address is None
    s = load(
        DATA_DIR=str(tmp_path),
        LOG_FORMAT="JSON",
        WORKER_HEARTBEAT_SECONDS="2",
        METRICS_DIR=str(tmp_path / "m"),
        METRICS_TOKEN="scrape-me",
        METRICS_ADDRESS="[::1]:9464",
    )
    assert s.log_format == LogFormat.JSON
    assert s.worker_heartbeat_seconds == 2.0 and s.worker_stale_seconds == 6.0
    assert s.metrics_dir == tmp_path.resolve() / "m"
    assert s.metrics_token == "scrape-me" and "scrape-me" not in repr(s)
    assert s.metrics_address == ("::1", 9464)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "yaml"),
        ("WORKER_HEARTBEAT_SECONDS", "0"),
        ("WORKER_STALE_SECONDS", "1"),  # shorter than the heartbeat: every worker stale
        ("METRICS_ADDRESS", "9464"),
        ("METRICS_ADDRESS", "host:99999"),
    ],
)
def test_bad_operations_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=P + name):
        load(**{name: value})
