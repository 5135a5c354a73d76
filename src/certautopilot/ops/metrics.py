"""``/metrics``: the worker processes' counters (multiprocess files) and the figures of
state read from the database at scrape time.

Database figures, each one cheap at a million certificates:

* ``certautopilot_certificates{project,status}``: one GROUP BY over the
  ``(project_id, status, id)`` index (an index-only scan on PostgreSQL);
* ``certautopilot_workflows_waiting{waiting_for}``: the same rows, summed over projects
  for the three states in which a workflow waits on a person or a CA;
* ``certautopilot_certificates_expiring{project,within}``: the ``certificate_expiry_counts``
  table (one row per project, issuer and UTC day of expiry, kept by triggers), so
  certificates not revoked whose day of expiry is before today (``expired``) or within 1,
  7, 14 or 30 days are counted, managed or not, auto-renewed or not;
* ``certautopilot_certificate_expiry_timestamp_seconds{project}``: the earliest
  ``not_after`` of a certificate that is not revoked, one index seek per project;
* ``certautopilot_renewal_backlog``: certificates due for renewal and not started, a range
  count on ``ix_certificates_next_renewal``;
* ``certautopilot_worker_last_heartbeat_timestamp_seconds{executor}``: the heartbeats of
  workers seen within a day (older executors drop out, so the series stay bounded).

No label names a certificate: the series grow with projects, never with certificates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.certificates.models import Certificate, CertificateExpiryCount
from certautopilot.certificates.states import CertStatus
from certautopilot.health import service as health
from certautopilot.projects.models import Project
from certautopilot.renewal import scheduler

#: The states in which a workflow waits on someone, and the name the metric gives them.
WAITING = {
    CertStatus.AWAITING_APPROVAL: "approval",
    CertStatus.AWAITING_DNS: "manual_dns",
    CertStatus.AWAITING_CA: "adcs",
}
EXPIRY_WINDOWS_DAYS = (1, 7, 14, 30)
HEARTBEATS_KEPT = timedelta(days=1)


class DatabaseCollector(Collector):
    """Reads the figures of state at each scrape (a scrape is one short read transaction)."""

    def __init__(self, sessions: sessionmaker[Session], now: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        now = self._now()
        with self._sessions() as session:
            slugs = dict(session.execute(select(Project.id, Project.slug)).tuples().all())
            yield from self._certificates(session, slugs)
            yield from self._expiry(session, slugs, now)
            backlog = GaugeMetricFamily(
                "certautopilot_renewal_backlog",
                "Certificates due for renewal that no renewal has started yet.",
            )
            backlog.add_metric([], scheduler.backlog(session, now=now))
            yield backlog
            yield self._heartbeats(session, now)
        took = GaugeMetricFamily(
            "certautopilot_metrics_database_seconds",
            "How long this scrape's database reads took.",
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _certificates(self, session: Session, slugs: dict[str, str]) -> Iterator[GaugeMetricFamily]:
        rows = session.execute(
            select(Certificate.project_id, Certificate.status, func.count()).group_by(
                Certificate.project_id, Certificate.status
            )
        ).tuples()
        by_status = GaugeMetricFamily(
            "certautopilot_certificates",
            "Certificates by project and status.",
            labels=["project", "status"],
        )
        waiting = dict.fromkeys(WAITING.values(), 0)
        for project_id, status, n in rows:
            by_status.add_metric([slugs.get(project_id, project_id), status], n)
            if status in WAITING:
                waiting[WAITING[CertStatus(status)]] += n
        yield by_status
        gauge = GaugeMetricFamily(
            "certautopilot_workflows_waiting",
            "Issuance workflows waiting on a person or a CA: an approval, manual DNS"
            " records, an AD CS manager.",
            labels=["waiting_for"],
        )
        for name, n in waiting.items():
            gauge.add_metric([name], n)
        yield gauge

    def _expiry(
        self, session: Session, slugs: dict[str, str], now: datetime
    ) -> Iterator[GaugeMetricFamily]:
        today = now.date()
        last_day = (today + timedelta(days=max(EXPIRY_WINDOWS_DAYS))).isoformat()
        rows = session.execute(
            select(
                CertificateExpiryCount.project_id,
                CertificateExpiryCount.day,
                func.sum(CertificateExpiryCount.n),
            )
            .where(CertificateExpiryCount.day <= last_day, CertificateExpiryCount.n > 0)
            .group_by(CertificateExpiryCount.project_id, CertificateExpiryCount.day)
        ).tuples()
        windows = {"expired": today.isoformat()} | {
            f"{d}d": (today + timedelta(days=d)).isoformat() for d in EXPIRY_WINDOWS_DAYS
        }
        counts: dict[tuple[str, str], int] = {}
        for project_id, day, n in rows:
            for name, bound in windows.items():
                # expired: a day before today; within N days: up to today + N (UTC days)
                inside = day < bound if name == "expired" else day <= bound
                if inside:
                    key = (project_id, name)
                    counts[key] = counts.get(key, 0) + int(n)
        expiring = GaugeMetricFamily(
            "certautopilot_certificates_expiring",
            "Certificates not revoked that expired before today (within=expired) or expire"
            " within 1, 7, 14 or 30 days (UTC days; cumulative).",
            labels=["project", "within"],
        )
        for project_id in slugs:
            for name in windows:
                expiring.add_metric([slugs[project_id], name], counts.get((project_id, name), 0))
        yield expiring
        earliest = GaugeMetricFamily(
            "certautopilot_certificate_expiry_timestamp_seconds",
            "The earliest expiry (not_after) of a certificate not revoked, per project.",
            labels=["project"],
        )
        for project_id, slug in slugs.items():
            first = session.scalar(
                select(Certificate.not_after)
                .where(
                    Certificate.project_id == project_id,
                    Certificate.not_after.is_not(None),
                    Certificate.status != CertStatus.REVOKED,
                )
                .order_by(Certificate.not_after)
                .limit(1)
            )
            if first is not None:
                earliest.add_metric([slug], first.timestamp())
        yield earliest

    def _heartbeats(self, session: Session, now: datetime) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "certautopilot_worker_last_heartbeat_timestamp_seconds",
            "When each worker last wrote its heartbeat (workers seen within a day).",
            labels=["executor"],
        )
        for row in health.seen_since(session, since=now - HEARTBEATS_KEPT):
            gauge.add_metric([row.executor_id], row.last_seen_at.timestamp())
        return gauge


def registry(
    metrics_dir: Path, sessions: sessionmaker[Session], now: Callable[[], datetime]
) -> CollectorRegistry:
    """What one scrape reads: every process's files of ``metrics_dir``, then the database."""
    found = CollectorRegistry()
    metrics_dir.mkdir(parents=True, exist_ok=True)
    MultiProcessCollector(found, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    found.register(DatabaseCollector(sessions, now))
    return found


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
