"""Fan-out: one durable deployment workflow per target on the ``distribution`` queue.

:func:`fan_out` runs inside the transaction that stores an issued version
(``issued.store_issued``): it writes a ``pending`` deployment per attached target and
enqueues its workflow, id ``deploy:<version id>:<target id>``, in that same transaction —
so a version is never stored without its deployments, and a retried step cannot enqueue
twice. A certificate from the user's own CSR is never distributed.

Each deployment workflow makes one attempt (one step: decrypt, deploy, post-deploy check,
record). A retryable failure enqueues the next attempt as a new workflow, delayed by the
target's backoff, instead of sleeping: a failing target never holds a queue slot that
another target could use, and never blocks the others. The queue's concurrency limit is
``CERTAUTOPILOT_DISTRIBUTION_CONCURRENCY`` per worker (default 16).

The timeline gets ``cert.distributed`` or ``cert.distribution_failed`` per target (and
``distribution.attempt_failed`` for each failed attempt that will be retried). A final
failure is also sent to the project's admins through its notification channels: outbox
rows written in the same transaction, delivered by their own workflows (``notify.py``),
so a slow or failing channel never holds up a deployment.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dbos import DBOS, DBOSClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot import links
from certautopilot.audit.events import EventType
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.clock import utcnow
from certautopilot.distribution import service
from certautopilot.distribution.interfaces import DeployResult, DistributionError
from certautopilot.distribution.models import CertificateTarget, Deployment, DistributionTarget
from certautopilot.distribution.schemas import RetryPolicy
from certautopilot.distribution.states import DeployStatus, transition
from certautopilot.notifications import service as notifications
from certautopilot.projects.models import Project
from certautopilot.workflows import counted
from certautopilot.workflows.faults import pause_point
from certautopilot.workflows.records import load, record_event, tx
from certautopilot.workflows.runtime import launcher, runtime

log = logging.getLogger(__name__)
QUEUE = "distribution"
WORKFLOW_NAME = "deploy_certificate"


def concurrency() -> int:
    """``CERTAUTOPILOT_DISTRIBUTION_CONCURRENCY`` (default 16), from the worker's settings."""
    return runtime().settings.distribution_concurrency


def register_queue() -> None:
    """Called by the worker after ``DBOS.launch()``."""
    # Deployments are not latency-critical: a slower poll leaves the CPU to issuance.
    DBOS.register_queue(QUEUE, worker_concurrency=concurrency(), polling_interval_sec=0.25)


def fanout_workflow_id(version_id: str, target_id: str) -> str:
    return f"deploy:{version_id}:{target_id}"


def redeploy_workflow_id(deployment_id: str) -> str:
    return f"deploy:{deployment_id}"


def retry_workflow_id(deployment_id: str, attempt: int) -> str:
    return f"deploy:{deployment_id}:attempt-{attempt}"


def enqueuer(client: DBOSClient) -> service.DeploymentLauncher:
    def launch(session: Session, deployment_id: str, workflow_id: str) -> None:
        client.enqueue_in_transaction(
            session,
            {"workflow_name": WORKFLOW_NAME, "queue_name": QUEUE, "workflow_id": workflow_id},
            deployment_id,
            1,
        )

    return launch


def _worker_client() -> DBOSClient:
    """The worker's one DBOS client (see ``worker.start_worker``)."""
    client = launcher().client
    assert isinstance(client, DBOSClient)
    return client


def fan_out(session: Session, cert: Certificate, version: CertificateVersion) -> int:
    """Pending deployments + their workflows for every attached target, in the caller's
    transaction. Returns how many."""
    attached = service.attached_targets(session, cert.id)
    if not attached:
        return 0
    targets = [t for t in attached if t.enabled]
    disabled = [t.name for t in attached if not t.enabled]
    if disabled:
        record_event(
            session,
            cert,
            EventType.DISTRIBUTION_SKIPPED,
            {"reason": "the target is disabled", "targets": disabled, "version": version.seq},
        )
    if not targets:
        return 0
    if cert.csr_provided:
        record_event(
            session,
            cert,
            EventType.DISTRIBUTION_SKIPPED,
            {"reason": "certificates from your own CSR are never distributed"},
        )
        return 0
    rows = service.create_deployments(
        session,
        cert=cert,
        version=version,
        targets=targets,
        reason="renewed" if version.reason == "renew" else "issued",
        requested_by="system",
        launch=enqueuer(_worker_client()),
        workflow_id=lambda dep: fanout_workflow_id(version.id, dep.target_id),
    )
    return len(rows)


@dataclass(frozen=True)
class Outcome:
    """What an attempt ended in. Public values only (step output is stored by DBOS)."""

    status: str
    retry_in: float | None = None


@DBOS.workflow(name=WORKFLOW_NAME)
def deploy_certificate(deployment_id: str, attempt: int) -> str:
    outcome = attempt_deployment(deployment_id, attempt)
    if outcome.retry_in is not None:
        DBOS.enqueue_workflow_with_options(
            {
                "workflow_name": WORKFLOW_NAME,
                "queue_name": QUEUE,
                "workflow_id": retry_workflow_id(deployment_id, attempt + 1),
                "delay_seconds": outcome.retry_in,
            },
            deployment_id,
            attempt + 1,
        )
    return outcome.status


@dataclass(frozen=True)
class _Job:
    cert_id: str
    target_name: str
    kind: str
    version: int
    serial: str | None


def _superseded(session: Session, dep: Deployment, seq: int) -> bool:
    """True when a newer version already reached this target."""
    newer = session.scalar(
        select(Deployment.id)
        .join(CertificateVersion, CertificateVersion.id == Deployment.version_id)
        .where(
            Deployment.certificate_id == dep.certificate_id,
            Deployment.target_id == dep.target_id,
            Deployment.status == DeployStatus.SUCCEEDED,
            CertificateVersion.seq > seq,
        )
        .limit(1)
    )
    return newer is not None


@DBOS.step(name="deploy.attempt")
def attempt_deployment(deployment_id: str, attempt: int) -> Outcome:
    """One attempt, idempotent: a finished deployment is not done again, and what a
    target receives twice (same files, same ARN, same serial in Vault) changes nothing."""
    rt = runtime()
    with tx() as session:
        dep = session.get(Deployment, deployment_id)
        if dep is None:
            return Outcome("missing")
        if dep.status in service.FINAL:
            return Outcome(dep.status)
        version, cert = load(session, dep.version_id)
        target = session.get(DistributionTarget, dep.target_id)
        assert target is not None
        if _superseded(session, dep, version.seq):
            dep.status = transition(dep.status, DeployStatus.SUPERSEDED)
            dep.finished_at = utcnow()
            return Outcome("superseded")
        settings = service.load_settings(session, rt.kek, target)
        material = service.material_for(session, rt.kek, cert, version)
        link = session.get(CertificateTarget, (cert.id, target.id))
        state = dict(link.state) if link else {}
        dep.status = transition(dep.status, DeployStatus.RUNNING)
        dep.attempts = max(dep.attempts, attempt)
        dep.started_at = dep.started_at or utcnow()
        dep.next_attempt_at = None
        job = _Job(cert.id, target.name, target.kind, version.seq, version.serial)
    error: DistributionError | None = None
    result = DeployResult()
    with _slots():
        io_started_at, started = utcnow(), time.perf_counter()
        try:
            result = asyncio.run(service.deploy_once(settings, material, state, deployment_id))
        except DistributionError as exc:
            error = exc
        except Exception as exc:  # a plugin bug must not kill the workflow without a record
            log.exception("deployment %s to %s failed unexpectedly", deployment_id, job.target_name)
            error = DistributionError(f"unexpected {type(exc).__name__} in the target plugin")
        timing = {
            "io_started_at": io_started_at.isoformat(),
            "io_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    del material, settings
    pause_point("after_deploy")  # crash tests: the target has it, the row does not say so yet
    return _record(deployment_id, attempt, job, result, error, timing)


_slot_lock = threading.Lock()
_slot_semaphore: threading.BoundedSemaphore | None = None


def _slots() -> threading.BoundedSemaphore:
    """At most ``concurrency()`` deployments talk to targets at once in this process.

    The queue's ``worker_concurrency`` is the same number, but DBOS 3.4 counts a worker's
    running workflows from a registry filled asynchronously, and was measured running up to
    30 of a 16-limit queue at once on one worker: this makes the limit hold.
    """
    global _slot_semaphore
    with _slot_lock:
        if _slot_semaphore is None:
            _slot_semaphore = threading.BoundedSemaphore(concurrency())
        return _slot_semaphore


def _record(
    deployment_id: str,
    attempt: int,
    job: _Job,
    result: DeployResult,
    error: DistributionError | None,
    timing: dict[str, Any],
) -> Outcome:
    with tx() as session:
        dep = session.get(Deployment, deployment_id)
        cert = session.get(Certificate, job.cert_id)
        if dep is None or cert is None:
            return Outcome("missing")
        if dep.status in service.FINAL:
            return Outcome(dep.status)
        base: dict[str, Any] = {
            "target": job.target_name,
            "target_id": dep.target_id,
            "kind": job.kind,
            "version": job.version,
            "serial": job.serial,
            "deployment_id": dep.id,
            "attempt": attempt,
        }
        now = utcnow()
        if error is None:
            dep.status = transition(dep.status, DeployStatus.SUCCEEDED)
            dep.error = None
            dep.finished_at = now
            dep.result = {"actions": list(result.actions), **dict(result.detail), **timing}
            link = session.get(CertificateTarget, (dep.certificate_id, dep.target_id))
            if link is not None and result.state:
                link.state = {**link.state, **dict(result.state)}
            record_event(
                session, cert, EventType.CERT_DISTRIBUTED, {**base, "actions": list(result.actions)}
            )
            counted.deployment_ended(session, target_kind=job.kind, outcome="succeeded")
            return Outcome("succeeded")
        dep.error = {
            "title": error.title,
            "detail": str(error),
            "retryable": error.retryable,
            **timing,
        }
        if error.retryable and attempt < dep.max_attempts:
            target = session.get(DistributionTarget, dep.target_id)
            retry = RetryPolicy.model_validate(
                (target.config.get("retry") if target else None) or {}
            )
            delay = retry.delay_before(attempt + 1)
            dep.status = transition(dep.status, DeployStatus.RETRYING)
            dep.next_attempt_at = now + timedelta(seconds=delay)
            record_event(
                session,
                cert,
                EventType.DISTRIBUTION_ATTEMPT_FAILED,
                {**base, "error": str(error), "retry_in_seconds": delay},
            )
            counted.deployment_ended(session, target_kind=job.kind, outcome="retrying")
            return Outcome("retrying", delay)
        dep.status = transition(dep.status, DeployStatus.FAILED)
        dep.finished_at = now
        record_event(
            session, cert, EventType.CERT_DISTRIBUTION_FAILED, {**base, "error": str(error)}
        )
        _tell_admins(session, cert, job, attempt, error)
        counted.deployment_ended(session, target_kind=job.kind, outcome="failed")
        return Outcome("failed")


def _tell_admins(
    session: Session, cert: Certificate, job: _Job, attempts: int, error: DistributionError
) -> None:
    """``cert.distribution_failed`` to the project's admins, through every channel.

    The text names the target, the version and the target's error (plugins word errors
    without credentials); the certificate itself stays issued and downloadable."""
    project = session.get(Project, cert.project_id)
    base = runtime().settings.public_url
    tries = "once" if attempts == 1 else f"{attempts} times"
    serial = f" (serial {job.serial})" if job.serial else ""
    notifications.notify(
        session,
        launcher(),
        project_id=cert.project_id,
        event=EventType.CERT_DISTRIBUTION_FAILED,
        recipients=notifications.emails_with_roles(session, cert.project_id, ("admin",)),
        certificate_id=cert.id,
        link=links.certificate(project.slug if project else cert.project_id, cert.id, base=base),
        subject=f"Deploying {cert.common_name} to {job.target_name} failed",
        text=(
            f"Version {job.version}{serial} of {cert.common_name} could not be deployed to "
            f"the {job.kind} target {job.target_name}; tried {tries}, last error: "
            f"{error}. The certificate itself is issued and unchanged; fix the target, then "
            "redeploy (POST .../deploy)."
        ),
    )
