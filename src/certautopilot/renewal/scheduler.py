"""The renewal scheduler's rules, on the caller's session (the caller commits).

Each tick (``workflows/renewal.py``) runs, with ``now`` from the scheduler's clock:

1. :func:`reconcile` - the renewals it started that have ended: a success clears the
   backoff; a failure leaves ``current`` as it was (the still-valid certificate stays
   current and downloadable), puts the status back to ``issued`` while that certificate is
   valid, and schedules the next attempt with exponential backoff and jitter - or, once the
   attempts are spent, sets ``failed`` (``current`` still the valid certificate), records
   ``renewal.failed`` and notifies.
2. :func:`due_certificates` + :func:`start_renewal` - one short transaction per certificate
   whose renewal time has come: a conditional update takes the certificate (clears
   ``next_renewal_at`` only if it is still due and idle), and the same transaction creates the
   new version and enqueues the same issuance workflow. Two workers, or a tick that runs
   again, cannot renew one certificate twice: the second update matches no row.
3. :func:`expiry_warnings` - certificates nobody renews automatically (manual DNS, own CSR,
   auto-renew off, or attempts spent) are warned about 30/14/7/1 days before expiry, once per
   threshold per version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from certautopilot import links
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.models import User
from certautopilot.certificates import service as certificates
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import CertStatus, VersionStatus, transition
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.notifications import service as notifications
from certautopilot.projects.models import Project
from certautopilot.renewal import budget, orders
from certautopilot.renewal.backoff import BackoffPolicy, next_attempt_at
from certautopilot.renewal.models import RenewalState

log = logging.getLogger(__name__)
ACTOR = "scheduler"
RENEWABLE = (CertStatus.ISSUED, CertStatus.FAILED)
WARNING_DAYS = (30, 14, 7, 1)
RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
RATE_LIMITED_FLOOR_SECONDS = 3600.0


@dataclass(frozen=True)
class Config:
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    limits: budget.Limits = field(default_factory=budget.Limits)
    batch: int = 200
    public_url: str = ""


def _event(session: Session, cert: Certificate, type: EventType, detail: dict[str, Any]) -> None:
    audit.record(
        session,
        type=type,
        actor=ACTOR,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail=detail,
    )


def state_of(session: Session, cert_id: str) -> RenewalState:
    state = session.get(RenewalState, cert_id)
    if state is None:
        state = RenewalState(certificate_id=cert_id, attempts=0, warnings_sent=[])
        session.add(state)
    return state


def _notify(
    session: Session,
    launcher: notifications.NotificationLauncher,
    cert: Certificate,
    *,
    event: str,
    subject: str,
    text: str,
    public_url: str,
) -> None:
    requester = session.get(User, cert.created_by)
    admins = notifications.emails_with_roles(session, cert.project_id, ("admin",))
    recipients = sorted({*(admins), *([requester.email] if requester else [])})
    project = session.get(Project, cert.project_id)
    link = links.certificate(project.slug if project else cert.project_id, cert.id, base=public_url)
    notifications.notify(
        session,
        launcher,
        project_id=cert.project_id,
        event=event,
        recipients=recipients,
        certificate_id=cert.id,
        link=link,
        subject=subject,
        text=text,
    )


# -- 1. renewals that have ended ---------------------------------------------------------
def reconcile(
    session: Session,
    *,
    now: datetime,
    launcher: notifications.NotificationLauncher,
    config: Config,
) -> int:
    rows = session.execute(
        select(RenewalState, CertificateVersion, Certificate)
        .join(CertificateVersion, CertificateVersion.id == RenewalState.version_id)
        .join(Certificate, Certificate.id == RenewalState.certificate_id)
        .where(CertificateVersion.status.in_((VersionStatus.ISSUED, VersionStatus.FAILED)))
    ).all()
    for state, version, cert in rows:
        state.version_id = None
        if version.status == VersionStatus.ISSUED:
            state.attempts = 0
            state.gave_up_at = None
            continue
        state.attempts += 1
        state.last_failure_at = now
        _after_failure(session, state, version, cert, now=now, launcher=launcher, config=config)
    return len(rows)


def _after_failure(
    session: Session,
    state: RenewalState,
    version: CertificateVersion,
    cert: Certificate,
    *,
    now: datetime,
    launcher: notifications.NotificationLauncher,
    config: Config,
) -> None:
    error = cert.error or {}
    current = certificates.current_version(session, cert)
    still_valid = current is not None and current.not_after is not None and current.not_after > now
    if still_valid and cert.status == CertStatus.FAILED:
        cert.status = transition(
            cert.status, CertStatus.ISSUED
        )  # the failed renewal does not make the valid certificate fail
    floor = error.get("retry_after")  # the CA's Retry-After, when it sent one
    if floor is None and error.get("type") == RATE_LIMITED:
        floor = RATE_LIMITED_FLOOR_SECONDS
    retry = next_attempt_at(
        now, state.attempts, policy=config.backoff, key=cert.id, retry_after_seconds=floor
    )
    detail = {
        "version": version.seq,
        "attempt": state.attempts,
        "max_attempts": config.backoff.max_attempts,
        "error": error.get("title"),
    }
    if retry is not None and cert.auto_renew:
        cert.next_renewal_at = retry
        _event(
            session,
            cert,
            EventType.RENEWAL_RETRY_SCHEDULED,
            {**detail, "next_at": retry.isoformat()},
        )
        return
    cert.next_renewal_at = None
    cert.status = transition(
        cert.status, CertStatus.FAILED
    )  # attempts spent; ``current`` stays the valid certificate
    state.gave_up_at = now
    _event(session, cert, EventType.RENEWAL_FAILED, detail)
    expires = current.not_after.isoformat() if current and current.not_after else "unknown"
    _notify(
        session,
        launcher,
        cert,
        event=EventType.RENEWAL_FAILED,
        subject=f"Renewal of {cert.common_name} failed {state.attempts} times",
        text=(
            f"The automatic renewal of {cert.common_name} failed {state.attempts} times in a "
            f"row (last: {error.get('title')}: {error.get('detail')}). The current certificate "
            f"stays in place and expires at {expires}; renew it by hand."
        ),
        public_url=config.public_url,
    )


# -- 2. renewals that are due ------------------------------------------------------------
def due_certificates(session: Session, *, now: datetime, limit: int) -> list[str]:
    stmt = (
        select(Certificate.id)
        .where(
            Certificate.auto_renew.is_(True),
            Certificate.csr_provided.is_(False),
            Certificate.status.in_(RENEWABLE),
            Certificate.current_version_id.is_not(None),
            Certificate.next_renewal_at.is_not(None),
            Certificate.next_renewal_at <= now,
        )
        .order_by(Certificate.next_renewal_at, Certificate.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def start_renewal(
    session: Session,
    *,
    cert_id: str,
    now: datetime,
    launcher: certificates.IssuanceLauncher,
    config: Config,
) -> str | None:
    """Takes a due certificate and starts its renewal; None when it was not (or no longer)
    due, or the rate-limit budget defers it."""
    cert = session.get(Certificate, cert_id)
    if cert is None or cert.next_renewal_at is None or cert.next_renewal_at > now:
        return None
    due_at = cert.next_renewal_at
    issuer = session.get(Issuer, cert.issuer_id)
    if issuer is not None and issuers.has(issuer, issuer_port.ORDER_RATE_LIMITS):
        verdict = orders.verdict(
            session, issuer=issuer, names=cert.names, now=now, limits=config.limits
        )
        if not verdict.allowed:
            later = verdict.retry_at or now + timedelta(hours=1)
            taken = session.execute(
                update(Certificate)
                .where(Certificate.id == cert_id, Certificate.next_renewal_at == due_at)
                .values(next_renewal_at=later)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                session.refresh(cert)
                _event(
                    session,
                    cert,
                    EventType.RENEWAL_DEFERRED,
                    {
                        "reason": verdict.reason,
                        "limit": verdict.limit,
                        "next_at": later.isoformat(),
                    },
                )
            return None
    taken = session.execute(
        update(Certificate)
        .where(
            Certificate.id == cert_id,
            Certificate.auto_renew.is_(True),
            Certificate.status.in_(RENEWABLE),
            Certificate.next_renewal_at == due_at,
        )
        .values(next_renewal_at=None)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(cert)
    state = state_of(session, cert.id)
    from_version = cert.current_version_id
    if state.from_version_id is not None and state.from_version_id != from_version:
        # a new certificate since the failures counted (renewed by hand): start afresh
        state.attempts, state.gave_up_at = 0, None
    version = certificates._new_version(session, cert, reason="renew", launcher=launcher)
    state.version_id = version.id
    state.from_version_id = from_version
    if issuer is not None:  # counted now: the next certificate of this tick sees it
        orders.record_order(
            session,
            issuer=issuer,
            certificate_id=cert.id,
            names=cert.names,
            version_id=version.id,
            at=now,
        )
    _event(
        session,
        cert,
        EventType.CERT_RENEWAL_STARTED,
        {
            "version": version.seq,
            "from_version": from_version,
            "due_at": due_at.isoformat(),
            "attempt": state.attempts + 1,
        },
    )
    return version.id


# -- 3. expiry warnings ------------------------------------------------------------------
def thresholds_crossed(not_after: datetime, now: datetime) -> list[int]:
    left = not_after - now
    return [d for d in WARNING_DAYS if left <= timedelta(days=d)]


def expiry_warnings(
    session: Session,
    *,
    now: datetime,
    launcher: notifications.NotificationLauncher,
    config: Config,
) -> int:
    rows = session.execute(
        select(Certificate, CertificateVersion, RenewalState)
        .join(CertificateVersion, CertificateVersion.id == Certificate.current_version_id)
        .outerjoin(RenewalState, RenewalState.certificate_id == Certificate.id)
        .where(
            Certificate.status.in_(RENEWABLE),
            CertificateVersion.not_after.is_not(None),
            CertificateVersion.not_after > now,
            CertificateVersion.not_after <= now + timedelta(days=max(WARNING_DAYS)),
            CertificateVersion.revoked_at.is_(None),
        )
    ).all()
    sent = 0
    for cert, version, state in rows:
        gave_up = (
            state is not None and state.gave_up_at is not None and cert.next_renewal_at is None
        )
        if cert.auto_renew and not gave_up:
            continue
        assert version.not_after is not None
        crossed = thresholds_crossed(version.not_after, now)
        state = state or state_of(session, cert.id)
        done = set(state.warnings_sent or [])
        new = [d for d in crossed if f"{version.id}:{d}" not in done]
        if not new:
            continue
        days = min(new)
        state.warnings_sent = sorted(done | {f"{version.id}:{d}" for d in crossed})
        why = cert.auto_renew_disabled_reason or (
            "automatic renewal gave up" if gave_up else "automatic renewal is off"
        )
        detail = {"days": days, "not_after": version.not_after.isoformat(), "version": version.seq}
        _event(session, cert, EventType.CERT_EXPIRY_WARNING, detail)
        _notify(
            session,
            launcher,
            cert,
            event=EventType.CERT_EXPIRY_WARNING,
            subject=f"Certificate for {cert.common_name} expires within {days} day(s)",
            text=(
                f"The certificate for {cert.common_name} expires at "
                f"{version.not_after.isoformat()} and is not renewed automatically ({why}). "
                "Renew it before then."
            ),
            public_url=config.public_url,
        )
        sent += 1
    return sent
