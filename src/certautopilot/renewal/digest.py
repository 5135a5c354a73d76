"""The daily expiry digest: every certificate of a project, managed or imported, listed
once per threshold it crosses (the project's rule: 30/14/7/1 days before expiry unless
set), in one message per channel per day rather than one per certificate.

The renewal tick calls :func:`send_digests`; ``expiry_digests`` has one row per project and
UTC day (unique), so two ticks or two workers never send a second digest that day; each
version's thresholds are marked when listed (``expiry_alert_marks``), so a certificate is
listed again only when it crosses the next one. The caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certautopilot import links
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import CertStatus
from certautopilot.db.base import new_id
from certautopilot.errors import InvalidInput
from certautopilot.notifications import service as notifications
from certautopilot.notifications.models import (
    ExpiryAlertMark,
    ExpiryAlertRule,
    ExpiryDigest,
    NotificationChannel,
)
from certautopilot.projects.models import Project

DEFAULT_THRESHOLDS = (30, 14, 7, 1)
MAX_THRESHOLDS = 10
MAX_DAYS = 365
MAX_LISTED = 200  # a digest lists at most this many certificates (the rest are counted)


@dataclass(frozen=True)
class Rule:
    thresholds_days: tuple[int, ...]
    enabled: bool


def rule_of(session: Session, project_id: str) -> Rule:
    row = session.get(ExpiryAlertRule, project_id)
    if row is None:
        return Rule(DEFAULT_THRESHOLDS, True)
    return Rule(tuple(sorted(set(row.thresholds_days), reverse=True)), row.enabled)


def set_rule(
    session: Session, *, project_id: str, thresholds_days: list[int], enabled: bool, actor: Actor
) -> Rule:
    require(actor, "admin", "Changing the expiry alert rule")
    if not thresholds_days or len(thresholds_days) > MAX_THRESHOLDS:
        raise InvalidInput.field("thresholds_days", f"give 1 to {MAX_THRESHOLDS} day counts")
    for i, days in enumerate(thresholds_days):
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput.field(f"thresholds_days[{i}]", f"must be 1 to {MAX_DAYS} days")
    row = session.get(ExpiryAlertRule, project_id)
    if row is None:
        row = ExpiryAlertRule(project_id=project_id)
        session.add(row)
    row.thresholds_days = sorted(set(thresholds_days), reverse=True)
    row.enabled = enabled
    audit.record(
        session,
        type=EventType.POLICY_UPDATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="project",
        subject_id=project_id,
        detail={"expiry_alerts": {"thresholds_days": row.thresholds_days, "enabled": enabled}},
    )
    return Rule(tuple(row.thresholds_days), enabled)


@dataclass(frozen=True)
class Listed:
    cert: Certificate
    version: CertificateVersion
    threshold: int
    days_left: int


def due_items(session: Session, *, project_id: str, rule: Rule, now: datetime) -> list[Listed]:
    """The certificates of the project that crossed a threshold not yet listed."""
    if not rule.thresholds_days:
        return []
    horizon = now + timedelta(days=max(rule.thresholds_days))
    rows = session.execute(
        select(Certificate, CertificateVersion)
        .join(CertificateVersion, CertificateVersion.id == Certificate.current_version_id)
        .where(
            Certificate.project_id == project_id,
            Certificate.status != CertStatus.REVOKED,
            CertificateVersion.revoked_at.is_(None),
            CertificateVersion.not_after.is_not(None),
            CertificateVersion.not_after > now,
            CertificateVersion.not_after <= horizon,
        )
        .order_by(CertificateVersion.not_after, Certificate.id)
    ).all()
    ids = [v.id for _, v in rows]
    marked: set[tuple[str, int]] = set()
    if ids:
        marked = {
            (m.version_id, m.threshold_days)
            for m in session.scalars(
                select(ExpiryAlertMark).where(ExpiryAlertMark.version_id.in_(ids))
            )
        }
    items = []
    for cert, version in rows:
        assert version.not_after is not None
        left = version.not_after - now
        crossed = [t for t in rule.thresholds_days if left <= timedelta(days=t)]
        if not crossed:
            continue
        nearest = min(crossed)
        if (version.id, nearest) in marked:
            continue
        items.append(Listed(cert, version, nearest, int(left.total_seconds() // 86400)))
    return items


def _text(project: Project, items: list[Listed], public_url: str) -> str:
    lines = [
        f"{len(items)} certificate(s) of project {project.name} cross an expiry threshold:",
        "",
    ]
    for item in items[:MAX_LISTED]:
        cert, version = item.cert, item.version
        assert version.not_after is not None
        kind = "managed" if cert.managed else "imported, not renewed by CertAutoPilot"
        renews = (
            "renewed automatically"
            if cert.managed and cert.auto_renew and cert.next_renewal_at
            else "renew it by hand"
        )
        link = links.certificate(project.slug, cert.id, base=public_url) if public_url else None
        lines.append(
            f"- {cert.common_name}: expires {version.not_after.isoformat()} "
            f"(in {item.days_left} day(s)); {kind}; {renews}" + (f" <{link}>" if link else "")
        )
    if len(items) > MAX_LISTED:
        lines.append(f"... and {len(items) - MAX_LISTED} more")
    return "\n".join(lines)


def send_digests(
    session: Session,
    *,
    now: datetime,
    launcher: notifications.NotificationLauncher,
    public_url: str = "",
) -> int:
    """Today's digest of every project with a channel that has something to say: how
    many digests were written (one outbox row per channel each)."""
    day = now.date().isoformat()
    project_ids = list(session.scalars(select(NotificationChannel.project_id).distinct()))
    sent = 0
    for project_id in sorted(project_ids):
        if session.scalar(
            select(ExpiryDigest.id).where(
                ExpiryDigest.project_id == project_id, ExpiryDigest.day == day
            )
        ):
            continue
        rule = rule_of(session, project_id)
        project = session.get(Project, project_id)
        if not rule.enabled or project is None:
            continue
        items = due_items(session, project_id=project_id, rule=rule, now=now)
        if not items:
            continue
        digest = ExpiryDigest(id=new_id(), project_id=project_id, day=day, certificates=len(items))
        try:
            with session.begin_nested():
                session.add(digest)
                session.flush()
        except IntegrityError:
            continue  # another tick wrote today's digest first
        session.add_all(
            ExpiryAlertMark(
                version_id=i.version.id, threshold_days=i.threshold, digest_id=digest.id
            )
            for i in items
        )
        nearest = min(i.days_left for i in items)
        notifications.notify(
            session,
            launcher,
            project_id=project_id,
            event=EventType.CERT_EXPIRY_DIGEST,
            recipients=notifications.emails_with_roles(session, project_id, ("admin", "operator")),
            subject=(
                f"{len(items)} certificate(s) of {project.name} expire soon "
                f"(the first within {max(nearest, 0) + 1} day(s))"
            ),
            text=_text(project, items, public_url),
            link=links.certificates(project.slug, base=public_url) if public_url else None,
            certificate_id=None,
        )
        audit.record(
            session,
            type=EventType.CERT_EXPIRY_DIGEST,
            actor="scheduler",
            project_id=project_id,
            subject_type="project",
            subject_id=project_id,
            detail={"day": day, "certificates": [i.cert.id for i in items[:MAX_LISTED]]},
        )
        sent += 1
    return sent
