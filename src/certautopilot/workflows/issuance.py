"""The durable issuance workflow: one per certificate version, id ``issue:<version id>``.

The body is deterministic: every read, write, network call and clock look-up is in a
step. It calls the issuer port (``issuers.interfaces``) through the issuer's plugin and
picks its path by what the plugin states it can do, never by its name: a CA that validates
with DNS-01 goes through ``acme_steps`` (order, publish, answer, finalize); one that takes
the CSR directly, perhaps to a person at the CA, through ``adcs_steps`` (submit, wait,
download). It waits on people with ``recv`` and always ends: in ``issued``, or in
``failed`` with the CA's or the DNS provider's words on the certificate.
"""

from __future__ import annotations

import logging

from dbos import DBOS
from dbos import error as dbos_error

from certautopilot.approvals.states import RequestStatus
from certautopilot.errors import CertAutoPilotError, DNSError
from certautopilot.issuers import interfaces
from certautopilot.issuers import service as issuers
from certautopilot.workflows import acme_steps as steps
from certautopilot.workflows import adcs_steps, approval_steps, fallback

log = logging.getLogger(__name__)
QUEUE = "issuance"
WORKFLOW_NAME = "issue_certificate"
APPROVAL_WORKFLOW_NAME = "approve_then_issue"
APPROVAL = "approval"
DNS_CONFIRMED = "dns_confirmed"
MANUAL_DNS_WAIT_SECONDS = 7 * 24 * 3600.0


def workflow_id(version_id: str) -> str:
    return f"issue:{version_id}"


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=None)
def issue_certificate(version_id: str, kind: str = "acme") -> str:
    return _issue(version_id, kind)


@DBOS.workflow(name=APPROVAL_WORKFLOW_NAME, max_recovery_attempts=None)
def approve_then_issue(version_id: str, kind: str = "acme") -> str:
    """Waits for the approval request's decision (or its expiry), then issues."""
    while True:
        wait = approval_steps.seconds_left(version_id)
        DBOS.recv(APPROVAL, timeout_seconds=max(wait, 0.0))
        decision = approval_steps.decision(version_id)
        if decision == RequestStatus.APPROVED:
            return _issue(version_id, kind)
        if decision != RequestStatus.PENDING:
            return decision


def _issue(version_id: str, kind: str) -> str:
    """``kind`` comes with the workflow's input (the issuer's kind when it was enqueued);
    the plugin registry answers what it can do (installed plugins: the same on every run)."""
    plan: steps.Plan | None = None
    try:
        if interfaces.DNS01 not in issuers.capabilities(kind):
            return adcs_steps.run(version_id)
        plan = _begin(version_id)
        if plan.done:
            return "done"
        if plan.manual:
            _await_manual_dns(version_id, plan.manual)
        steps.complete(version_id, plan)
        return "issued"
    except Exception as exc:
        # ``fail`` removes what is still published before the certificate shows "failed".
        steps.fail(version_id, plan, *_failure(version_id, exc), retry_after=_retry_after(exc))
        return "failed"


def _begin(version_id: str) -> steps.Plan:
    """``begin``, and when the issuer cannot issue (``fallback.reason_of``), ``begin`` again
    on the next allowed fallback issuer the version is switched to; with none left, the
    first issuer's failure is raised as before. Each switch happens before any order is
    placed (``fallback`` explains why), so the version keeps one order URL."""
    hop = 0
    while True:
        try:
            return steps.begin(version_id)
        except Exception as exc:
            found = fallback.reason_of(exc)
            if found is None or fallback.fall_back(version_id, hop, *found) is None:
                raise
            hop += 1


def _retry_after(exc: Exception) -> float | None:
    """The CA's ``Retry-After`` (seconds) behind a failure, kept for the renewal backoff."""
    if isinstance(exc, dbos_error.DBOSMaxStepRetriesExceeded) and exc.errors:
        exc = exc.errors[-1]
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


def _failure(version_id: str, exc: Exception) -> tuple[str, str, str | None]:
    if isinstance(exc, dbos_error.DBOSMaxStepRetriesExceeded) and exc.errors:
        last = exc.errors[-1]
        if isinstance(last, CertAutoPilotError):
            return (
                last.title,
                f"{last} (after {exc.max_retries} attempts)",
                getattr(last, "problem_type", None),
            )
    if isinstance(exc, CertAutoPilotError):
        return exc.title, str(exc), getattr(exc, "problem_type", None)
    log.error("issuance of version %s failed unexpectedly: %r", version_id, exc)
    return "Internal error", f"An unexpected {type(exc).__name__} stopped the issuance.", None


def _await_manual_dns(version_id: str, tasks: list[steps.ChallengeTask]) -> None:
    steps.request_manual(version_id, tasks)
    while True:
        message = DBOS.recv(DNS_CONFIRMED, timeout_seconds=MANUAL_DNS_WAIT_SECONDS)
        if message is None:
            raise DNSError(
                "Nobody confirmed the manual DNS records within 7 days; request the "
                "certificate again when the records can be published."
            )
        if steps.check_manual(version_id, tasks, str(message.get("by", "unknown"))):
            return
