"""The shipped Prometheus alert rules and Grafana dashboard (deploy/): valid PromQL,
passing their own ``promtool test rules`` cases, naming only metrics the service exports.

promtool comes from the Debian package ``prometheus`` (in the Makefile's APT_PACKAGES);
without it these tests fail, they are not skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import Counter, Histogram

from certautopilot import telemetry
from certautopilot.config import Settings
from certautopilot.db.migrate import upgrade
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.ops.metrics import DatabaseCollector

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "certautopilot-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "certautopilot-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "certautopilot-dashboard.json"
METRIC = re.compile(r"\bcertautopilot_[a-z_]+\b")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: apt-get install prometheus (make setup does it)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


def test_the_rules_are_valid() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    done = _promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, as a recording rule, through promtool's PromQL parser (the
    dashboard's ``$project`` variable stands for every project)."""
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for n, expr in enumerate(_dashboard_queries()):
        rules += [f"      - record: dashboard:q{n}", f"        expr: {json.dumps(expr)}"]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text("\n".join(rules).replace("$project", ".*") + "\n")
    done = _promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def exported(tmp_path: Path) -> set[str]:
    """Every sample name the service exports: the workers' counters and histograms, and
    the database gauges (collected from a fresh database)."""
    names: set[str] = set()
    for metric in vars(telemetry).values():
        if isinstance(metric, Histogram):
            base = metric._name
            names |= {base + "_bucket", base + "_count", base + "_sum"}
        elif isinstance(metric, Counter):
            names.add(metric._name + "_total")
    settings = Settings.from_env({"CERTAUTOPILOT_DATA_DIR": str(tmp_path)})
    upgrade(settings)
    engine = make_engine(settings)
    try:
        collector = DatabaseCollector(make_sessionmaker(engine), lambda: datetime.now(UTC))
        names |= {family.name for family in collector.collect()}
    finally:
        engine.dispose()
    return names


def test_rules_and_dashboard_name_only_exported_metrics(exported: set[str]) -> None:
    used = set(METRIC.findall(RULES.read_text()))
    used |= {m for q in _dashboard_queries() for m in METRIC.findall(q)}
    assert used, "no metric found in the rules"
    assert sorted(used - exported) == []
    # and every metric the issue asks for is exported
    assert {
        "certautopilot_issuance_duration_seconds_bucket",
        "certautopilot_issuance_failures_total",
        "certautopilot_certificates",
        "certautopilot_certificate_expiry_timestamp_seconds",
        "certautopilot_certificates_expiring",
        "certautopilot_renewals_total",
        "certautopilot_renewal_backlog",
        "certautopilot_deployments_total",
        "certautopilot_notifications_failed_total",
        "certautopilot_workflows_waiting",
        "certautopilot_worker_last_heartbeat_timestamp_seconds",
    } <= exported
