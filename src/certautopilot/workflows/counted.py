"""Where the workflows' events become metrics (``telemetry``), each once its transaction
has committed: an issuance's end, a renewal's start and end."""

from __future__ import annotations

from sqlalchemy.orm import Session

from certautopilot import telemetry
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.clock import utcnow
from certautopilot.issuers.models import Issuer


def _issuer_kind(session: Session, cert: Certificate) -> str:
    issuer = session.get(Issuer, cert.issuer_id)
    return issuer.kind if issuer is not None else "unknown"


def issuance_ended(
    session: Session,
    cert: Certificate,
    version: CertificateVersion,
    *,
    outcome: str,
    problem_type: str | None = None,
) -> None:
    """``outcome``: issued or failed. The duration runs from the version's request."""
    kind = _issuer_kind(session, cert)
    seconds = max((utcnow() - version.created_at).total_seconds(), 0.0)
    renewal = version.reason == "renew"

    def record() -> None:
        telemetry.ISSUANCE_DURATION.labels(issuer_kind=kind, outcome=outcome).observe(seconds)
        if outcome == "failed":
            problem = telemetry.problem_label(problem_type)
            telemetry.ISSUANCE_FAILURES.labels(issuer_kind=kind, problem=problem).inc()
        if renewal:
            telemetry.RENEWALS.labels(outcome="renewed" if outcome == "issued" else "failed").inc()

    telemetry.after_commit(session, record)


def renewal_started(session: Session) -> None:
    telemetry.after_commit(session, lambda: telemetry.RENEWALS.labels(outcome="started").inc())


def deployment_ended(session: Session, *, target_kind: str, outcome: str) -> None:
    """``outcome``: succeeded, failed, or retrying (an attempt failed, another follows)."""
    counter = telemetry.DEPLOYMENTS.labels(target_kind=target_kind, outcome=outcome)
    telemetry.after_commit(session, counter.inc)


def notification_failed(session: Session, *, channel_kind: str) -> None:
    counter = telemetry.NOTIFICATIONS_FAILED.labels(channel_kind=channel_kind)
    telemetry.after_commit(session, counter.inc)
