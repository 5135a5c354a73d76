"""The counters and histograms of things that happen (issuance, renewal, deployment,
notification), kept by the worker processes and scraped through the API's ``/metrics``.

prometheus-client's multiprocess mode: each process writes its values to files of its own
under ``Settings.metrics_dir`` (memory-mapped, no locking between processes) and the API
process adds every file up at scrape time (``ops.metrics``). One scrape target then covers
the API and every worker ``serve`` started on that host, which per-worker ports would not:
those need a scrape target per worker and a Prometheus that knows how many there are. A
worker started by hand on another host writes to its own host's directory, and exports it
with ``certautopilot worker --metrics-port``.

Figures that are states rather than events (certificates by status, the renewal backlog,
workers' heartbeats) are not kept here: ``ops.metrics`` reads them from the database at
scrape time, so every process, on every host, agrees on them.

Labels are bounded: an issuer kind, an outcome, a target or channel kind, a problem type
from the CA's fixed vocabulary. No label names a certificate, a project or a host.
Every value is recorded after its transaction commits (:func:`after_commit`), so a step
that is retried after a failed commit does not count twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import Counter, Histogram, values
from sqlalchemy import event
from sqlalchemy.orm import Session

#: From a few seconds (a lab CA) to a day (a request that waited on an approver).
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400)

ISSUANCE_DURATION = Histogram(
    "certautopilot_issuance_duration_seconds",
    "From the request of a certificate version to its end (issued or failed).",
    ["issuer_kind", "outcome"],
    buckets=DURATION_BUCKETS,
)
ISSUANCE_FAILURES = Counter(
    "certautopilot_issuance_failures",
    "Issuances that failed, by issuer kind and the CA's problem type or AD CS code.",
    ["issuer_kind", "problem"],
)
RENEWALS = Counter(
    "certautopilot_renewals",
    "Renewals: started by the scheduler, then renewed or failed.",
    ["outcome"],
)
DEPLOYMENTS = Counter(
    "certautopilot_deployments",
    "Deployment attempts that ended, by target kind and outcome (succeeded, failed, retrying).",
    ["target_kind", "outcome"],
)
NOTIFICATIONS_FAILED = Counter(
    "certautopilot_notifications_failed",
    "Notifications that could not be delivered after their retries, by channel kind.",
    ["channel_kind"],
)

_PROBLEM = re.compile(r"[A-Za-z0-9_.-]{1,48}")


def problem_label(problem_type: str | None) -> str:
    """The label of a failure's problem type: the RFC 8555 name of an ACME problem
    (``urn:ietf:params:acme:error:rateLimited`` -> ``rateLimited``), an AD CS code as it
    is, ``none`` without one; anything longer or stranger is ``other`` (bounded)."""
    if not problem_type:
        return "none"
    name = problem_type.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    return name if _PROBLEM.fullmatch(name) else "other"


def enable_multiprocess() -> None:
    """Makes the values this process creates from now on live in the multiprocess
    directory (``config.export_metrics_dir`` names it first). Every metric here has
    labels, so its values are created at first use, after this call."""
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def after_commit(session: Session, record: Callable[[], None]) -> None:
    """Runs ``record`` once ``session``'s transaction has committed (never on rollback)."""

    def _committed(_session: Session) -> None:
        record()

    event.listen(session, "after_commit", _committed, once=True)
