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

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true, update
from sqlalchemy.orm import Session

from certautopilot import links
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.models import User
from certautopilot.certificates import fallbacks
from certautopilot.certificates import service as certificates
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import CertStatus, VersionStatus, transition
from certautopilot.dns import service as dns_zones
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.notifications import service as notifications
from certautopilot.projects.models import Project
from certautopilot.renewal import budget, orders, state_rows, windows
from certautopilot.renewal.backoff import BackoffPolicy, next_attempt_at
from certautopilot.renewal.models import RenewalState

log = logging.getLogger(__name__)
ACTOR = "scheduler"
RENEWABLE = (CertStatus.ISSUED, CertStatus.FAILED)
WARNING_DAYS = windows.WARNING_DAYS
RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
RATE_LIMITED_FLOOR_SECONDS = 3600.0
# a renewal whose zone is disabled asks again hourly (enabling the zone takes effect within
# the hour) and is on the timeline once a day
ZONE_DISABLED_RETRY = timedelta(hours=1)
ZONE_DISABLED_NEWS = timedelta(days=1)


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
    return state_rows.ensure_state(session, cert_id)


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
    """One batch (at most ``config.batch``) of ended renewals, their certificates locked in
    id order; the caller repeats while a full batch came back (handled rows drop out: their
    ``version_id`` is cleared)."""
    rows = session.execute(
        select(RenewalState, CertificateVersion, Certificate)
        .join(CertificateVersion, CertificateVersion.id == RenewalState.version_id)
        .join(Certificate, Certificate.id == RenewalState.certificate_id)
        .where(
            RenewalState.version_id.is_not(None),
            CertificateVersion.status.in_((VersionStatus.ISSUED, VersionStatus.FAILED)),
        )
        .order_by(RenewalState.certificate_id)
        .limit(config.batch)
        # the certificate first, then its state: the order start_renewal takes them in
        .with_for_update(of=Certificate)
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
def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    # ``= true`` rather than ``IS TRUE``: an equality PostgreSQL can take from the front of
    # ``ix_certificates_due``
    return (
        Certificate.auto_renew == true(),
        Certificate.csr_provided == false(),
        Certificate.status.in_(RENEWABLE),
        Certificate.current_version_id.is_not(None),
        Certificate.next_renewal_at.is_not(None),
        Certificate.next_renewal_at <= now,
        # a disabled issuer orders nothing: its certificates wait (and are warned about)
        Certificate.issuer_id.not_in(issuers.disabled_ids()),
    )


def due_certificates(session: Session, *, now: datetime, limit: int) -> list[str]:
    stmt = (
        select(Certificate.id)
        .where(*_due(now))
        .order_by(Certificate.not_after, Certificate.next_renewal_at, Certificate.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def backlog(session: Session, *, now: datetime) -> int:
    """How many certificates are due for renewal and not started yet (the metric
    ``certautopilot_renewal_backlog``): a range count on ``ix_certificates_next_renewal``."""
    return session.scalar(select(func.count()).select_from(Certificate).where(*_due(now))) or 0


def ari_renewal(session: Session, cert_id: str) -> bool:
    """Whether the certificate's renewal replaces it through ARI: the CA answered
    renewalInfo for it (so its directory offers ARI and the order carries ``replaces``)."""
    state = session.get(RenewalState, cert_id)
    return state is not None and state.ari_window is not None


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
    if issuer is not None:
        off = dns_zones.disabled_zones_of(session, cert, issuer)
        if off:  # nothing may be written there: ask again later, say so once a day
            detail: dict[str, Any] = {
                "reason": "; ".join(dns_zones.disabled_message(z) for z in off),
                "zones": [z.name for z in off],
            }
            later = now + ZONE_DISABLED_RETRY
            _defer(session, cert, due_at, now, later, ZONE_DISABLED_NEWS, detail)
            return None
    budget_refusal: dict[str, Any] | None = None
    if issuer is not None and issuers.has(issuer, issuer_port.ORDER_RATE_LIMITS):
        verdict = orders.verdict(
            session,
            issuer=issuer,
            names=cert.names,
            now=now,
            limits=config.limits,
            ari_renewal=ari_renewal(session, cert.id),
        )
        taker = None if verdict.allowed else _budget_fallback(session, cert, now, config)
        if taker is not None:
            budget_refusal = {
                "reason": "budget",
                "detail": verdict.reason,
                "from": issuer.id,
                "from_issuer": issuer.name,
                "to": taker.id,
                "to_issuer": taker.name,
                "at_request": True,
            }
            issuer = taker
        elif not verdict.allowed:
            later = verdict.retry_at or now + timedelta(hours=1)
            window = verdict.window or timedelta(hours=1)
            detail = {"reason": verdict.reason, "limit": verdict.limit}
            _defer(session, cert, due_at, now, later, window, detail)
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
    state.deferred_at = None  # released: a later deferral is a new one
    from_version = cert.current_version_id
    if state.from_version_id is not None and state.from_version_id != from_version:
        # a new certificate since the failures counted (renewed by hand): start afresh
        state.attempts, state.gave_up_at = 0, None
    version = certificates._new_version(
        session,
        cert,
        reason="renew",
        launcher=launcher,
        issuer_id=issuer.id if budget_refusal is not None and issuer is not None else None,
    )
    if budget_refusal is not None:  # the first issuer's budget is spent: a fallback's is not
        _event(
            session,
            cert,
            EventType.CERT_ISSUER_FALLBACK,
            {"version": version.seq, **budget_refusal},
        )
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


def _defer(
    session: Session,
    cert: Certificate,
    due_at: datetime,
    now: datetime,
    later: datetime,
    news_every: timedelta,
    detail: dict[str, Any],
) -> None:
    """Moves a due renewal to ``later`` (unless another worker took it meanwhile), with a
    ``renewal.deferred`` event at most once per ``news_every``: a certificate that keeps
    waiting for the same thing is not news on every tick."""
    taken = session.execute(
        update(Certificate)
        .where(Certificate.id == cert.id, Certificate.next_renewal_at == due_at)
        .values(next_renewal_at=later)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return
    session.refresh(cert)
    state = state_of(session, cert.id)
    if budget.deferral_is_news(state.deferred_at, now=now, window=news_every):
        state.deferred_at = now
        _event(session, cert, EventType.RENEWAL_DEFERRED, {**detail, "next_at": later.isoformat()})


def _budget_fallback(
    session: Session, cert: Certificate, now: datetime, config: Config
) -> Issuer | None:
    """The first fallback issuer (``certificates.fallbacks``) policy allows and whose own
    budget has room for this renewal, when the certificate's issuer has none."""
    for issuer_id in fallbacks.chain_ids(session, cert)[1:]:
        candidate = session.get(Issuer, issuer_id)
        if candidate is None or fallbacks.allowed_now(session, cert, candidate) is not None:
            continue
        found = orders.verdict(
            session, issuer=candidate, names=cert.names, now=now, limits=config.limits
        )
        if found.allowed:
            return candidate
    return None


# -- 3. expiry warnings ------------------------------------------------------------------
def thresholds_crossed(not_after: datetime, now: datetime) -> list[int]:
    """The usual day thresholds crossed (a certificate of 10 days or more)."""
    left = not_after - now
    return [d for d in WARNING_DAYS if left <= timedelta(days=d)]


def warnings_due(
    not_before: datetime | None, not_after: datetime, now: datetime
) -> list[timedelta]:
    """The thresholds of this certificate's lifetime crossed at ``now`` (``windows``)."""
    lifetime = not_after - not_before if not_before is not None else timedelta(days=90)
    left = not_after - now
    return [t for t in windows.warning_thresholds(lifetime) if left <= t]


def expiry_warnings(
    session: Session,
    *,
    now: datetime,
    launcher: notifications.NotificationLauncher,
    config: Config,
    after: str | None = None,
) -> tuple[int, str | None]:
    """One batch (at most ``config.batch`` certificates, id order after ``after``) of the
    certificates nobody renews automatically that expire within the warning window; the
    filter is SQL, so auto-renewed certificates are never read. Returns the warnings sent
    and the id to continue after (None when this was the last batch)."""
    gave_up = and_(RenewalState.gave_up_at.is_not(None), Certificate.next_renewal_at.is_(None))
    stmt = (
        select(Certificate, CertificateVersion, RenewalState)
        .join(CertificateVersion, CertificateVersion.id == Certificate.current_version_id)
        .outerjoin(RenewalState, RenewalState.certificate_id == Certificate.id)
        .where(
            Certificate.status.in_(RENEWABLE),
            Certificate.managed.is_(True),  # imported ones are in the daily digest only
            or_(
                Certificate.auto_renew.is_(False),
                gave_up,
                Certificate.issuer_id.in_(issuers.disabled_ids()),
            ),
            # the certificate's copy of its current version's not_after: filtered before the
            # join, where the rows nobody renews are found by index (a million versions are
            # not read to find the few expiring)
            Certificate.not_after > now,
            Certificate.not_after <= now + timedelta(days=max(WARNING_DAYS)),
            CertificateVersion.revoked_at.is_(None),
        )
        .order_by(Certificate.id)
        .limit(config.batch)
    )
    if after is not None:
        stmt = stmt.where(Certificate.id > after)
    rows = session.execute(stmt).all()
    sent = 0
    for cert, version, state in rows:
        gave_up_now = (
            state is not None and state.gave_up_at is not None and cert.next_renewal_at is None
        )
        assert version.not_after is not None
        crossed = warnings_due(version.not_before, version.not_after, now)
        state = state or state_of(session, cert.id)
        done = set(state.warnings_sent or [])
        keys = {t: f"{version.id}:{windows.threshold_key(t)}" for t in crossed}
        new = [t for t in crossed if keys[t] not in done]
        if not new:
            continue
        nearest = min(new)
        days = max(1, int(nearest.total_seconds() // 86400))
        state.warnings_sent = sorted(done | set(keys.values()))
        why = cert.auto_renew_disabled_reason or (
            "automatic renewal gave up" if gave_up_now else "automatic renewal is off"
        )
        detail = {
            "days": days,
            "within": windows.human(nearest),
            "not_after": version.not_after.isoformat(),
            "version": version.seq,
        }
        _event(session, cert, EventType.CERT_EXPIRY_WARNING, detail)
        _notify(
            session,
            launcher,
            cert,
            event=EventType.CERT_EXPIRY_WARNING,
            subject=f"Certificate for {cert.common_name} expires within {windows.human(nearest)}",
            text=(
                f"The certificate for {cert.common_name} expires at "
                f"{version.not_after.isoformat()} and is not renewed automatically ({why}). "
                "Renew it before then."
            ),
            public_url=config.public_url,
        )
        sent += 1
    last = rows[-1][0].id if len(rows) == config.batch else None
    return sent, last
