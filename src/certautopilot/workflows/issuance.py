"""The durable issuance workflow: one per certificate version, id ``issue:<version id>``.

The body is deterministic: every read, write, network call and clock look-up is in a
step (``acme_steps``). It waits on people with ``recv`` and always ends: in ``issued``,
or in ``failed`` with the CA's or the DNS provider's words on the certificate.
"""

from __future__ import annotations

import logging

from dbos import DBOS
from dbos import error as dbos_error

from certautopilot.errors import CertAutoPilotError, DNSError
from certautopilot.workflows import acme_steps as steps

log = logging.getLogger(__name__)
QUEUE = "issuance"
WORKFLOW_NAME = "issue_certificate"
DNS_CONFIRMED = "dns_confirmed"
MANUAL_DNS_WAIT_SECONDS = 7 * 24 * 3600.0


def workflow_id(version_id: str) -> str:
    return f"issue:{version_id}"


@DBOS.workflow(name=WORKFLOW_NAME, max_recovery_attempts=None)
def issue_certificate(version_id: str) -> str:
    if not steps.prepare_key(version_id):
        return "done"
    published: list[steps.ChallengeTask] = []
    failure: tuple[str, str, str | None] | None = None
    try:
        steps.create_order(version_id)
        tasks = steps.challenges(version_id)
        automatic = [t for t in tasks if not t.manual]
        manual = [t for t in tasks if t.manual]
        if automatic:
            published = automatic
            steps.publish(version_id, automatic)
            steps.wait_propagation(version_id, automatic)
        if manual:
            _await_manual_dns(version_id, manual)
        steps.validate(version_id, tasks)
    except Exception as exc:
        failure = _failure(version_id, exc)
    # Records are removed once the CA has validated them, or on failure, before the
    # certificate shows its outcome: nothing is left behind in the zone.
    if published:
        steps.cleanup(version_id, published)
    if failure is None:
        try:
            steps.finalize(version_id)
            return "issued"
        except Exception as exc:
            failure = _failure(version_id, exc)
    steps.mark_failed(version_id, *failure)
    return "failed"


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
