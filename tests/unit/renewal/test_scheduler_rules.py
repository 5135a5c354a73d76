"""The scheduler's rules on a real (in-memory SQLite) schema, with a recording launcher:
at most one renewal per due version, the budget defers, the backoff is persisted and
bounded, the CA's Retry-After is a floor, expiry warnings are sent once per threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit.models import AuditEvent
from certautopilot.auth.models import User
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.issuers.models import Issuer, IssuerStatus
from certautopilot.notifications.models import Notification, NotificationChannel
from certautopilot.projects.models import Project
from certautopilot.renewal import budget
from certautopilot.renewal import scheduler as rules
from certautopilot.renewal.ari import RenewalInfo
from certautopilot.renewal.ari_refresh import Target, apply
from certautopilot.renewal.backoff import BackoffPolicy
from certautopilot.renewal.models import OrderLog, RenewalState
from tests.fakes import RecordingLauncher

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CONFIG = rules.Config(backoff=BackoffPolicy(base_seconds=60, cap_seconds=3600, max_attempts=3))


def _cert(
    session: Session, name: str, *, auto_renew: bool = True, not_after: datetime | None = None
) -> Certificate:
    project = session.scalar(select(Project)) or Project(slug="p", name="P")
    user = session.scalar(select(User)) or User(email="owner@example.test")
    session.add_all([project, user])
    session.flush()
    issuer = session.scalar(select(Issuer)) or Issuer(
        project_id=project.id, name="ca", kind="acme", config={}
    )
    if not session.scalar(select(NotificationChannel)):
        session.add(
            NotificationChannel(project_id=project.id, name="mail", kind="email", config={})
        )
    session.add(issuer)
    session.flush()
    end = not_after or NOW + timedelta(days=30)
    cert = Certificate(
        project_id=project.id,
        issuer_id=issuer.id,
        common_name=name,
        names=[name],
        key_type="ecdsa-p256",
        auto_renew=auto_renew,
        status="issued",
        created_by=user.id,
        next_renewal_at=NOW - timedelta(minutes=1) if auto_renew else None,
        not_after=end,
    )
    session.add(cert)
    session.flush()
    version = CertificateVersion(
        certificate_id=cert.id,
        seq=1,
        status="issued",
        serial="01",
        not_before=end - timedelta(days=90),
        not_after=end,
    )
    session.add(version)
    session.flush()
    cert.current_version_id = version.id
    session.flush()
    return cert


def _types(session: Session, cert: Certificate) -> list[str]:
    session.commit()  # audit events are chained and written when the transaction commits
    return list(
        session.scalars(
            select(AuditEvent.type)
            .where(AuditEvent.subject_id == cert.id)
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


def _fail_latest(session: Session, cert: Certificate, **error: Any) -> None:
    """What the issuance workflow's failure step leaves behind."""
    state = session.get(RenewalState, cert.id)
    assert state is not None and state.version_id is not None
    version = session.get(CertificateVersion, state.version_id)
    assert version is not None
    version.status = "failed"
    cert.status = "failed"
    cert.error = {"title": "CA error", "detail": "no", "type": None, **error}
    session.flush()


def test_a_due_certificate_is_renewed_once(session: Session) -> None:
    cert = _cert(session, "a.example.test")
    launcher = RecordingLauncher()
    assert rules.due_certificates(session, now=NOW, limit=10) == [cert.id]
    first = rules.start_renewal(session, cert_id=cert.id, now=NOW, launcher=launcher, config=CONFIG)
    again = rules.start_renewal(session, cert_id=cert.id, now=NOW, launcher=launcher, config=CONFIG)
    assert first is not None and again is None and launcher.issuances == [first]
    assert cert.next_renewal_at is None and cert.status == "requested"
    assert rules.due_certificates(session, now=NOW + timedelta(days=1), limit=10) == []
    session.commit()  # audit events are chained and written when the transaction commits
    started = session.scalar(select(AuditEvent).where(AuditEvent.type == "cert.renewal_started"))
    assert started is not None and started.actor == "scheduler"
    assert started.detail["from_version"] == cert.current_version_id


def test_success_clears_the_backoff(session: Session) -> None:
    cert = _cert(session, "ok.example.test")
    launcher = RecordingLauncher()
    version_id = rules.start_renewal(
        session, cert_id=cert.id, now=NOW, launcher=launcher, config=CONFIG
    )
    state = session.get(RenewalState, cert.id)
    assert state is not None
    state.attempts = 2
    version = session.get(CertificateVersion, version_id)
    assert version is not None
    version.status = "issued"
    assert rules.reconcile(session, now=NOW, launcher=launcher, config=CONFIG) == 1
    assert state.attempts == 0 and state.version_id is None


def test_failures_back_off_then_give_up_keeping_current(session: Session) -> None:
    cert = _cert(session, "b.example.test")
    current = cert.current_version_id
    launcher = RecordingLauncher()
    now = NOW
    for attempt in (1, 2, 3):
        assert rules.start_renewal(
            session, cert_id=cert.id, now=now, launcher=launcher, config=CONFIG
        )
        _fail_latest(session, cert)
        rules.reconcile(session, now=now, launcher=launcher, config=CONFIG)
        state = session.get(RenewalState, cert.id)
        assert state is not None and state.attempts == attempt
        assert cert.current_version_id == current
        assert cert.status == ("issued" if attempt < 3 else "failed")
        if attempt < 3:
            assert cert.next_renewal_at is not None
            wait = (cert.next_renewal_at - now).total_seconds()
            assert 30 * 2 ** (attempt - 1) <= wait <= 60 * 2 ** (attempt - 1)
            # not due before the backoff has passed
            assert rules.due_certificates(session, now=now, limit=10) == []
            now = cert.next_renewal_at
    assert cert.next_renewal_at is None
    types = _types(session, cert)
    assert types.count("cert.renewal_started") == 3
    assert types.count("renewal.retry_scheduled") == 2 and types[-1] == "renewal.failed"
    told = session.scalars(select(Notification).where(Notification.event == "renewal.failed"))
    assert [n.recipients for n in told] == [["owner@example.test"]]


def test_retry_after_is_honoured(session: Session) -> None:
    cert = _cert(session, "c.example.test")
    launcher = RecordingLauncher()
    rules.start_renewal(session, cert_id=cert.id, now=NOW, launcher=launcher, config=CONFIG)
    _fail_latest(session, cert, type=rules.RATE_LIMITED, retry_after=7200.0)
    rules.reconcile(session, now=NOW, launcher=launcher, config=CONFIG)
    assert cert.next_renewal_at == NOW + timedelta(seconds=7200)


def test_budget_defers_renewals_of_a_busy_domain(session: Session) -> None:
    config = rules.Config(limits=budget.Limits(certs_per_domain=2, share=1.0))
    launcher = RecordingLauncher()
    certs = [_cert(session, f"h{i}.example.test") for i in range(3)]
    started = [
        rules.start_renewal(session, cert_id=c.id, now=NOW, launcher=launcher, config=config)
        for c in certs
    ]
    assert started[0] and started[1] and started[2] is None
    assert certs[2].next_renewal_at == NOW + timedelta(days=7)
    assert "renewal.deferred" in _types(session, certs[2])


def test_a_disabled_issuers_certificates_are_not_renewed_but_warned_about(
    session: Session,
) -> None:
    cert = _cert(session, "held.example.test", not_after=NOW + timedelta(days=20))
    assert rules.due_certificates(session, now=NOW, limit=10) == [cert.id]
    issuer = session.get(Issuer, cert.issuer_id)
    assert issuer is not None
    issuer.status = IssuerStatus.DISABLED
    session.flush()
    assert rules.due_certificates(session, now=NOW, limit=10) == []
    assert rules.backlog(session, now=NOW) == 0
    launcher = RecordingLauncher()
    assert rules.expiry_warnings(session, now=NOW, launcher=launcher, config=CONFIG) == (1, None)
    issuer.status = IssuerStatus.ACTIVE
    session.flush()
    assert rules.due_certificates(session, now=NOW, limit=10) == [cert.id]


def test_expiry_warnings_once_per_threshold_for_certificates_not_auto_renewed(
    session: Session,
) -> None:
    manual = _cert(session, "m.example.test", auto_renew=False, not_after=NOW + timedelta(days=20))
    _cert(session, "auto.example.test", not_after=NOW + timedelta(days=5))
    launcher = RecordingLauncher()
    assert rules.expiry_warnings(session, now=NOW, launcher=launcher, config=CONFIG) == (1, None)
    assert rules.expiry_warnings(session, now=NOW, launcher=launcher, config=CONFIG) == (0, None)
    later = NOW + timedelta(days=14)  # 6 days left: 14 and 7 crossed, one message (7)
    assert rules.expiry_warnings(session, now=later, launcher=launcher, config=CONFIG) == (1, None)
    session.commit()  # audit events are chained and written when the transaction commits
    warned = session.scalars(
        select(AuditEvent.detail).where(AuditEvent.type == "cert.expiry_warning")
    ).all()
    assert [d["days"] for d in warned] == [30, 7]
    assert all(
        e == manual.id
        for e in session.scalars(
            select(AuditEvent.subject_id).where(AuditEvent.type == "cert.expiry_warning")
        )
    )
    assert len(launcher.notifications) == 2


def test_thresholds() -> None:
    assert rules.thresholds_crossed(NOW + timedelta(days=31), NOW) == []
    assert rules.thresholds_crossed(NOW + timedelta(days=10), NOW) == [30, 14]
    assert rules.thresholds_crossed(NOW + timedelta(hours=2), NOW) == [30, 14, 7, 1]


def test_ari_window_replaces_the_lifetime_relative_time(session: Session) -> None:
    cert = _cert(session, "ari.example.test")
    cert.next_renewal_at = NOW + timedelta(days=20)
    assert cert.current_version_id is not None
    target = Target(cert.id, cert.current_version_id, "https://ca.test/dir", None, "x.AQ")
    window = RenewalInfo(NOW + timedelta(days=2), NOW + timedelta(days=3), None, 21600)
    at = apply(session, target, window, now=NOW, unit=0.5)
    assert at == NOW + timedelta(days=2, hours=12) == cert.next_renewal_at
    later = NOW + timedelta(hours=7)
    assert apply(session, target, window, now=later, unit=0.9) is None  # same window: kept
    assert cert.next_renewal_at == at
    state = session.get(RenewalState, cert.id)
    assert state is not None and state.ari_next_check_at == later + timedelta(hours=6)
    assert apply(session, target, "no-ari", now=later, unit=0.1) is None
    assert cert.next_renewal_at == at and state.ari_next_check_at == later + timedelta(days=1)
    session.commit()  # audit events are chained and written when the transaction commits
    event = session.scalar(select(AuditEvent).where(AuditEvent.type == "renewal.scheduled"))
    assert event is not None and event.detail["source"] == "ari"


def test_a_renewal_by_hand_after_giving_up_starts_the_count_afresh(session: Session) -> None:
    cert = _cert(session, "hand.example.test")
    launcher = RecordingLauncher()
    now = NOW
    for _ in range(3):
        rules.start_renewal(session, cert_id=cert.id, now=now, launcher=launcher, config=CONFIG)
        _fail_latest(session, cert)
        rules.reconcile(session, now=now, launcher=launcher, config=CONFIG)
        now = cert.next_renewal_at or now
    assert cert.next_renewal_at is None  # gave up
    # someone renews by hand: a new current version, a new renewal time
    new = CertificateVersion(
        certificate_id=cert.id, seq=9, status="issued", not_after=NOW + timedelta(days=90)
    )
    session.add(new)
    session.flush()
    cert.current_version_id, cert.status = new.id, "issued"
    cert.next_renewal_at = now
    rules.start_renewal(session, cert_id=cert.id, now=now, launcher=launcher, config=CONFIG)
    _fail_latest(session, cert)
    rules.reconcile(session, now=now, launcher=launcher, config=CONFIG)
    state = session.get(RenewalState, cert.id)
    assert state is not None and state.attempts == 1 and state.gave_up_at is None
    assert cert.next_renewal_at is not None  # backing off again, not giving up at once


def test_deferred_certificates_are_recorded_once_per_window_and_leave_soonest_expiry_first(
    session: Session,
) -> None:
    """Budget of two orders an hour, one used 40 minutes ago: the first certificate takes
    the other; the rest wait with one ``renewal.deferred`` each, also when a freed order
    goes to another one and they are deferred again within the window; each free order
    goes to the one that expires soonest."""
    config = rules.Config(
        limits=budget.Limits(orders_per_account=2, account_window=timedelta(hours=1), share=1.0)
    )
    launcher = RecordingLauncher()
    late = _cert(session, "late.example.test", not_after=NOW + timedelta(days=20))
    soon = _cert(session, "soon.example.test", not_after=NOW + timedelta(days=3))
    first = _cert(session, "first.example.test", not_after=NOW + timedelta(days=1))
    session.add(
        OrderLog(
            issuer_id=first.issuer_id,
            registered_domain="other.test",
            certificate_id="earlier",
            version_id="earlier",
            at=NOW - timedelta(minutes=40),
        )
    )
    session.flush()

    def tick(now: datetime) -> None:
        for cid in rules.due_certificates(session, now=now, limit=10):
            rules.start_renewal(session, cert_id=cid, now=now, launcher=launcher, config=config)

    tick(NOW)
    assert _types(session, first) == ["cert.renewal_started"]  # soonest expiry first
    assert late.next_renewal_at == soon.next_renewal_at == NOW + timedelta(minutes=20)
    assert _types(session, late) == _types(session, soon) == ["renewal.deferred"]
    tick(NOW + timedelta(minutes=10))  # not due yet
    tick(NOW + timedelta(minutes=20))  # the old order left: the sooner-expiring one goes
    assert _types(session, soon) == ["renewal.deferred", "cert.renewal_started"]
    assert late.next_renewal_at == NOW + timedelta(hours=1)
    assert _types(session, late) == ["renewal.deferred"]  # deferred again, no new event
    tick(NOW + timedelta(minutes=40))
    tick(NOW + timedelta(hours=1))
    assert _types(session, late) == ["renewal.deferred", "cert.renewal_started"]
    state = session.get(RenewalState, late.id)
    assert state is not None and state.deferred_at is None
