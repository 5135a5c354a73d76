"""Approval requests: created when policy requires approval, decided by someone else.

Only admins and approvers decide, and never on their own request. Deciding writes the
decision first; the waiting workflow then reads it (so a decision survives a lost
message or a restarted worker).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot import links
from certautopilot.approvals.models import ApprovalRequest
from certautopilot.approvals.schemas import RequestOut
from certautopilot.approvals.states import RequestStatus, transition
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.schemas import CertificateError
from certautopilot.certificates.states import CertStatus, VersionStatus, transition_version
from certautopilot.certificates.states import transition as cert_transition
from certautopilot.dns import service as dns_zones
from certautopilot.errors import Conflict, Forbidden, InvalidInput, NotFound
from certautopilot.issuers.models import Issuer, IssuerStatus
from certautopilot.notifications import service as notifications
from certautopilot.notifications.service import NotificationLauncher
from certautopilot.projects.models import Project

STATUSES = tuple(RequestStatus)


def _link(session: Session, row: ApprovalRequest, base_url: str) -> str:
    project = session.get(Project, row.project_id)
    slug = project.slug if project else row.project_id
    return links.request(slug, row.id, base=base_url)


def create_request(
    session: Session,
    *,
    launcher: NotificationLauncher,
    base_url: str,
    cert: Certificate,
    version_id: str,
    actor: Actor,
    request: dict[str, Any],
    warnings: list[dict[str, Any]],
    override: dict[str, Any] | None,
    now: datetime,
    expiry_days: int,
) -> ApprovalRequest:
    row = ApprovalRequest(
        project_id=cert.project_id,
        certificate_id=cert.id,
        version_id=version_id,
        requester_id=actor.user_id,
        requester_email=actor.email,
        request=request,
        warnings=warnings,
        override=override,
        expires_at=now + timedelta(days=expiry_days),
    )
    session.add(row)
    session.flush()
    for subject_type, subject_id in (("request", row.id), ("certificate", cert.id)):
        audit.record(
            session,
            type=EventType.REQUEST_CREATED,
            actor=actor.email,
            project_id=cert.project_id,
            subject_type=subject_type,
            subject_id=subject_id,
            detail={
                "request_id": row.id,
                "warnings": [w["code"] for w in warnings],
                "expires_at": row.expires_at.isoformat(),
            },
        )
    approvers = [
        e
        for e in notifications.emails_with_roles(session, cert.project_id, ("approver", "admin"))
        if e != actor.email
    ]
    codes = ", ".join(w["code"] for w in warnings) or "none"
    notifications.notify(
        session,
        launcher,
        project_id=cert.project_id,
        event=EventType.REQUEST_CREATED,
        recipients=approvers,
        certificate_id=cert.id,
        link=_link(session, row, base_url),
        subject=f"Approval needed: certificate for {cert.common_name}",
        text=(
            f"{actor.email} requests a certificate for {', '.join(cert.names)} "
            f"(key {cert.key_type}). Policy warnings: {codes}. "
            f"Decide by {row.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
    )
    return row


def why_cannot_decide(row: ApprovalRequest, actor: Actor) -> str | None:
    if row.requester_id == actor.user_id:
        return "You made this request; self-approval is blocked. Another approver must decide."
    if not actor.at_least("approver"):
        return f"Deciding requests needs the approver or admin role; you are {actor.role}."
    return None


def get_request(session: Session, *, project_id: str, request_id: str) -> ApprovalRequest:
    row = session.get(ApprovalRequest, request_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"no request {request_id!r} in this project")
    return row


def list_requests(
    session: Session, *, project_id: str, status: str | None
) -> list[ApprovalRequest]:
    if status is not None and status not in STATUSES:
        raise InvalidInput.field("status", f"must be one of {', '.join(STATUSES)}")
    stmt = select(ApprovalRequest).where(ApprovalRequest.project_id == project_id)
    if status:
        stmt = stmt.where(ApprovalRequest.status == status)
    return list(session.scalars(stmt.order_by(ApprovalRequest.created_at.desc()).limit(500)))


def count_pending(session: Session, *, project_id: str) -> int:
    """How many requests wait for an approver (the inventory's dashboard)."""
    stmt = select(func.count()).where(
        ApprovalRequest.project_id == project_id, ApprovalRequest.status == RequestStatus.PENDING
    )
    return int(session.scalar(stmt) or 0)


def decide(
    session: Session,
    *,
    launcher: NotificationLauncher,
    base_url: str,
    row: ApprovalRequest,
    actor: Actor,
    approve: bool,
    comment: str,
    now: datetime,
) -> Certificate:
    """Records the decision; the caller commits, then wakes the workflow."""
    reason = why_cannot_decide(row, actor)
    if reason:
        raise Forbidden(reason)
    if row.status != RequestStatus.PENDING:
        raise Conflict(f"the request is {row.status} already")
    if now >= row.expires_at:
        raise Conflict("the request has expired; the requester must submit it again")
    comment = comment.strip()
    if not approve and not comment:
        raise InvalidInput.field("comment", "is required to reject: say why")
    cert = session.get(Certificate, row.certificate_id)
    assert cert is not None
    issuer = session.get(Issuer, cert.issuer_id) if approve else None
    if issuer is not None and issuer.status == IssuerStatus.DISABLED:
        raise Conflict(
            f"issuer {issuer.name} was disabled after this request was made: enable the "
            "issuer, or reject the request"
        )
    if issuer is not None:
        off = dns_zones.disabled_zones_of(session, cert, issuer)
        if off:
            names = ", ".join(z.name for z in off)
            raise Conflict(
                f"zone {names} was disabled after this request was made, so no DNS-01 record "
                "can be written: enable it in Settings → DNS zones, or reject the request"
            )
    row.status = transition(
        row.status, RequestStatus.APPROVED if approve else RequestStatus.REJECTED
    )
    row.comment = comment or None
    row.decided_by = actor.email
    row.decided_at = now
    event = EventType.REQUEST_APPROVED if approve else EventType.REQUEST_REJECTED
    detail = {"request_id": row.id, "comment": comment or None}
    for subject_type, subject_id in (("request", row.id), ("certificate", cert.id)):
        audit.record(
            session,
            type=event,
            actor=actor.email,
            project_id=row.project_id,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=detail,
        )
    if approve:
        cert.status = cert_transition(cert.status, CertStatus.REQUESTED)
        cert.step = "queued"
    else:
        cert.status = cert_transition(cert.status, CertStatus.REJECTED)
        cert.step = None
        cert.error = CertificateError(title="Request rejected", detail=comment).model_dump(
            mode="json"
        )
        _close_version(session, row)
    verdict = "approved" if approve else "rejected"
    notifications.notify(
        session,
        launcher,
        project_id=row.project_id,
        event=event,
        recipients=[row.requester_email],
        certificate_id=cert.id,
        link=_link(session, row, base_url),
        subject=f"Your certificate request for {cert.common_name} was {verdict}",
        text=f"{actor.email} {verdict} the request" + (f": {comment}" if comment else "."),
    )
    return cert


def _close_version(session: Session, row: ApprovalRequest) -> None:
    version = session.get(CertificateVersion, row.version_id)
    if version is not None and version.status == VersionStatus.PENDING:
        version.status = transition_version(version.status, VersionStatus.REJECTED)


def expire(session: Session, *, row: ApprovalRequest, now: datetime) -> None:
    if row.status != RequestStatus.PENDING or now < row.expires_at:
        return
    row.status = transition(row.status, RequestStatus.EXPIRED)
    row.decided_at = now
    cert = session.get(Certificate, row.certificate_id)
    assert cert is not None
    _close_version(session, row)
    cert.status = cert_transition(cert.status, CertStatus.REJECTED)
    cert.step = None
    cert.error = CertificateError(
        title="Request expired",
        detail=f"Nobody decided the request by {row.expires_at.isoformat()}.",
    ).model_dump(mode="json")
    detail = {"request_id": row.id, "expired_at": now.isoformat()}
    for subject_type, subject_id in (("request", row.id), ("certificate", cert.id)):
        audit.record(
            session,
            type=EventType.REQUEST_EXPIRED,
            actor=audit.SYSTEM_ACTOR,
            project_id=row.project_id,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=detail,
        )


def to_out(row: ApprovalRequest, actor: Actor) -> RequestOut:
    reason = (
        why_cannot_decide(row, actor) if row.status == RequestStatus.PENDING else "already decided"
    )
    return RequestOut(
        id=row.id,
        certificate_id=row.certificate_id,
        status=row.status,
        requester=row.requester_email,
        request=row.request,
        warnings=row.warnings,
        override=row.override,
        comment=row.comment,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        expires_at=row.expires_at,
        created_at=row.created_at,
        can_decide=reason is None,
        cannot_decide_reason=reason,
    )
