"""Short-lived certificates (Let's Encrypt's 6-day ``shortlived`` profile) on a real
(in-memory SQLite) schema: expiry warnings follow the lifetime (none at issuance, then at
half and a sixth of it left) and never come for a certificate that renews itself; a CA's
ARI Retry-After is capped for them; the API shows the real lifetime."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit.models import AuditEvent
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.schemas import VersionSummary
from certautopilot.notifications.models import Notification
from certautopilot.renewal import scheduler as rules
from certautopilot.renewal.ari_refresh import recheck_after
from tests.fakes import RecordingLauncher
from tests.unit.renewal.test_scheduler_rules import CONFIG, NOW, _cert


def _short(session: Session, name: str, *, auto_renew: bool) -> Certificate:
    cert = _cert(session, name, auto_renew=auto_renew, not_after=NOW + timedelta(days=6))
    version = session.get(CertificateVersion, cert.current_version_id)
    assert version is not None
    version.not_before = NOW  # a 6-day certificate issued now
    session.flush()
    return cert


def _warned(session: Session) -> list[dict]:
    session.commit()  # audit events are chained and written when the transaction commits
    return list(
        session.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.type == "cert.expiry_warning")
            .order_by(AuditEvent.id)
        )
    )


def test_a_short_lived_certificate_is_warned_by_its_lifetime(session: Session) -> None:
    manual = _short(session, "m6.example.test", auto_renew=False)
    _short(session, "auto6.example.test", auto_renew=True)  # renews itself: never warned
    launcher = RecordingLauncher()
    # at issuance 6 days are left: the 30/14/7-day thresholds would all fire; none does
    assert rules.expiry_warnings(session, now=NOW, launcher=launcher, config=CONFIG)[0] == 0
    assert (
        rules.expiry_warnings(
            session, now=NOW + timedelta(days=3), launcher=launcher, config=CONFIG
        )[0]
        == 1
    )
    assert (
        rules.expiry_warnings(
            session, now=NOW + timedelta(days=4), launcher=launcher, config=CONFIG
        )[0]
        == 0
    )
    assert (
        rules.expiry_warnings(
            session, now=NOW + timedelta(days=5), launcher=launcher, config=CONFIG
        )[0]
        == 1
    )
    assert [(d["days"], d["within"]) for d in _warned(session)] == [(3, "3 days"), (1, "1 day")]
    subjects = session.scalars(select(Notification.subject).order_by(Notification.created_at))
    assert list(subjects) == [
        "Certificate for m6.example.test expires within 3 days",
        "Certificate for m6.example.test expires within 1 day",
    ]
    assert all(
        s == manual.id
        for s in session.scalars(
            select(AuditEvent.subject_id).where(AuditEvent.type == "cert.expiry_warning")
        )
    )


def test_ari_retry_after_is_capped_for_short_lived_certificates() -> None:
    six_days = timedelta(days=6).total_seconds()
    assert recheck_after(86_400, six_days) == timedelta(hours=12)
    assert recheck_after(3_600, six_days) == timedelta(hours=1)  # a sooner answer stands
    assert recheck_after(86_400, timedelta(days=90).total_seconds()) == timedelta(days=1)
    assert recheck_after(86_400, None) == timedelta(days=1)


def test_the_api_shows_the_real_lifetime() -> None:
    six = VersionSummary(
        serial="01", not_before=NOW, not_after=NOW + timedelta(days=6), fingerprint_sha256="x"
    )
    assert six.lifetime_seconds == 6 * 86400 and six.short_lived
    ninety = VersionSummary(
        serial="02", not_before=NOW, not_after=NOW + timedelta(days=90), fingerprint_sha256="x"
    )
    assert ninety.lifetime_seconds == 90 * 86400 and not ninety.short_lived
