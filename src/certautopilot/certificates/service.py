"""Certificate requests: validation, zone resolution, versions, and the read model.

Every function takes the caller's session and never commits. Launching the durable
issuance happens through ``launcher`` inside the same transaction, so a request is
never stored without its job, nor a job started for a request that was rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from certautopilot.approvals import service as approvals
from certautopilot.approvals.models import ApprovalRequest
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates import states
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.preflight import Preflight, preflight
from certautopilot.certificates.schemas import (
    REVOCATION_REASONS,
    CertificateError,
    CertificateIn,
    CertificateOut,
    VersionSummary,
    pending_action_of,
)
from certautopilot.certificates.states import CertStatus, transition
from certautopilot.clock import utcnow
from certautopilot.distribution import service as distribution
from certautopilot.distribution.models import DistributionTarget
from certautopilot.dns import service as dns_zones
from certautopilot.errors import Conflict, InvalidInput, NotFound, RateLimited
from certautopilot.issuers import service as issuers
from certautopilot.issuers.adcs import service as adcs_issuers
from certautopilot.issuers.models import Issuer
from certautopilot.policy import service as policy
from certautopilot.renewal import budget, orders, profiles
from certautopilot.renewal.models import RenewalState

ACTIVE = states.ACTIVE
DEFAULT_LIMITS = budget.Limits()


class IssuanceLauncher(Protocol):
    """Starts the durable issuance of a version in the caller's transaction; with
    ``approval`` the workflow first waits for the request's decision."""

    def enqueue_issuance(
        self, session: Session, version_id: str, *, approval: bool = False, kind: str = "acme"
    ) -> None: ...

    def enqueue_notifications(self, session: Session, notification_ids: list[str]) -> None: ...


def _check_targets(
    session: Session, project_id: str, body: CertificateIn, pre: Preflight
) -> list[DistributionTarget]:
    if body.distribution_targets and pre.csr is not None:
        raise InvalidInput.field("distribution_targets", distribution.BYO_CSR_REFUSAL)
    return distribution.check_target_ids(
        session, project_id=project_id, ids=body.distribution_targets
    )


def create_certificate(
    session: Session,
    *,
    project_id: str,
    body: CertificateIn,
    actor: Actor,
    launcher: IssuanceLauncher,
    now: datetime,
    base_url: str = "",
    limits: budget.Limits = DEFAULT_LIMITS,
) -> Certificate:
    """Runs preflight, applies policy (override, approval), checks the CA's rate-limit
    budget (429 when this order would exceed it), stores the request, starts it."""
    require(actor, "operator", "Requesting a certificate")
    pre = preflight(session, project_id=project_id, body=body)
    if body.override is not None and not pre.warnings:
        raise InvalidInput.field("override", "there is no policy warning to override")
    override = policy.check_override(
        pre.warnings, body.override.model_dump() if body.override else None, actor
    )
    targets = _check_targets(session, project_id, body, pre)
    taker, out_of_budget = _budget_taker(session, pre, now, limits)
    names = pre.names
    cert = Certificate(
        project_id=project_id,
        issuer_id=pre.issuer.id,
        fallback_issuer_ids=(
            [i.id for i in pre.fallbacks] if body.fallback_issuers is not None else None
        ),
        common_name=names[0],
        names=names,
        key_type=pre.key_type,
        auto_renew=pre.auto_renew,
        auto_renew_disabled_reason=pre.auto_renew_disabled_reason,
        renewal_window=body.renewal_window.model_dump(exclude_none=True)
        if body.renewal_window
        else None,
        challenge_overrides={
            t.name: {
                "zone_id": t.zone_id,
                "challenge_name": t.challenge_name,
                "manual": t.zone_id in pre.manual_zone_ids,
                "delegated_from": t.delegated_from,
                "explicit": t.explicit,
                "fallback": t.fallback,
            }
            for t in pre.targets
        },
        csr_provided=pre.csr is not None,
        status=CertStatus.REQUESTED,
        created_by=actor.user_id,
    )
    session.add(cert)
    session.flush()
    profiles.set_profile(session, certificate_id=cert.id, profile=body.acme_profile)
    distribution.attach(session, cert=cert, targets=targets)
    if pre.adcs_template is not None:
        adcs_issuers.attach_profile(session, certificate_id=cert.id, template=pre.adcs_template)
    _event(
        session,
        cert,
        actor,
        EventType.CERT_REQUESTED,
        {
            "names": names,
            "key_type": pre.key_type,
            "issuer": pre.issuer.name,
            "csr_provided": pre.csr is not None,
            **({"adcs_template": pre.adcs_template} if pre.adcs_template else {}),
        },
    )
    warnings = [w.as_dict() for w in pre.warnings]
    if override is not None:
        _event(
            session, cert, actor, EventType.POLICY_OVERRIDDEN, {**override, "warnings": warnings}
        )
    approval = pre.rules.approval_required
    version = _new_version(
        session,
        cert,
        reason="issue",
        launcher=launcher,
        csr_pem=pre.csr.pem if pre.csr else None,
        approval=approval,
        issuer_id=taker.id if taker is not None else None,
    )
    if taker is not None and out_of_budget is not None:
        _event(
            session,
            cert,
            actor,
            EventType.CERT_ISSUER_FALLBACK,
            {
                "version": version.seq,
                "reason": "budget",
                "detail": str(out_of_budget),
                "from": pre.issuer.id,
                "from_issuer": pre.issuer.name,
                "to": taker.id,
                "to_issuer": taker.name,
                "at_request": True,
            },
        )
    if approval:
        approvals.create_request(
            session,
            launcher=launcher,
            base_url=base_url,
            cert=cert,
            version_id=version.id,
            actor=actor,
            request=pre.out().model_dump(mode="json"),
            warnings=warnings,
            override=override,
            now=now,
            expiry_days=pre.rules.request_expiry_days,
        )
        cert.status = transition(cert.status, CertStatus.AWAITING_APPROVAL)
        cert.step = "awaiting_approval"
    else:  # ordered at once: counted now, so the next request sees it
        _count_order(session, cert, version.id, now)
    return cert


def _budget_taker(
    session: Session, pre: Preflight, now: datetime, limits: budget.Limits
) -> tuple[Issuer | None, RateLimited | None]:
    """The issuer's budget is checked (429 when the order would exceed it); when it is
    spent, the first fallback issuer with budget left takes the order instead (and the
    refusal, for the timeline). ``(None, None)``: the issuer itself has budget."""
    try:
        orders.require_budget(session, issuer=pre.issuer, names=pre.names, now=now, limits=limits)
        return None, None
    except RateLimited as exc:
        for issuer in pre.fallbacks:
            try:
                orders.require_budget(
                    session, issuer=issuer, names=pre.names, now=now, limits=limits
                )
            except RateLimited:
                continue
            return issuer, exc
        raise


def _count_order(session: Session, cert: Certificate, version_id: str, now: datetime) -> None:
    version = session.get(CertificateVersion, version_id)
    issuer_id = version.issuer_id if version is not None and version.issuer_id else None
    issuer = session.get(Issuer, issuer_id or cert.issuer_id)
    if issuer is not None:
        orders.record_order(
            session,
            issuer=issuer,
            certificate_id=cert.id,
            names=cert.names,
            version_id=version_id,
            at=now,
        )


def _event(
    session: Session, cert: Certificate, actor: Actor, type: EventType, detail: dict[str, Any]
) -> None:
    audit.record(
        session,
        type=type,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail=detail,
    )


def _new_version(
    session: Session,
    cert: Certificate,
    *,
    reason: str,
    launcher: IssuanceLauncher,
    csr_pem: str | None = None,
    approval: bool = False,
    issuer_id: str | None = None,
) -> CertificateVersion:
    seq = (
        session.scalar(
            select(func.max(CertificateVersion.seq)).where(
                CertificateVersion.certificate_id == cert.id
            )
        )
        or 0
    ) + 1
    version = CertificateVersion(
        certificate_id=cert.id, seq=seq, reason=reason, csr_pem=csr_pem, issuer_id=issuer_id
    )
    session.add(version)
    session.flush()
    cert.status = transition(cert.status, CertStatus.REQUESTED)
    cert.error = None
    cert.pending_action = None
    cert.step = "queued"
    kind = session.scalar(select(Issuer.kind).where(Issuer.id == cert.issuer_id)) or "acme"
    launcher.enqueue_issuance(session, version.id, approval=approval, kind=kind)
    return version


def renew_certificate(
    session: Session,
    *,
    cert: Certificate,
    actor: Actor,
    launcher: IssuanceLauncher,
    now: datetime,
    limits: budget.Limits = DEFAULT_LIMITS,
) -> CertificateVersion:
    """A new version by hand; refused (429) when its order would exceed the CA's limits."""
    require(actor, "operator", "Renewing a certificate")
    if not cert.managed:
        raise Conflict(
            "an imported certificate is not managed by CertAutoPilot: adopt it (choose its "
            "issuer) before renewing it"
        )
    if cert.status in ACTIVE:
        raise Conflict(f"the certificate is being issued already (status {cert.status})")
    if cert.status in (CertStatus.REVOKED, CertStatus.REJECTED, CertStatus.AWAITING_APPROVAL):
        raise Conflict(f"a {cert.status} certificate cannot be renewed; request a new one")
    issuer = session.get(Issuer, cert.issuer_id)
    if issuer is not None:
        issuers.require_enabled(issuer)
        dns_zones.refuse_if_disabled(session, cert, issuer)
        orders.require_budget(
            session,
            issuer=issuer,
            names=cert.names,
            now=now,
            limits=limits,
            ari_renewal=_replaces_through_ari(session, cert),
        )
    claim_status(
        session,
        cert,
        CertStatus.REQUESTED,
        conflict="the certificate is being renewed already (another request started it)",
    )
    audit.record(
        session,
        type=EventType.CERT_RENEWAL_REQUESTED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={},
    )
    csr_pem = latest_version(session, cert).csr_pem if cert.csr_provided else None
    version = _new_version(session, cert, reason="renew", launcher=launcher, csr_pem=csr_pem)
    _count_order(session, cert, version.id, now)
    return version


def _replaces_through_ari(session: Session, cert: Certificate) -> bool:
    """The renewal's order will carry ARI ``replaces``: the CA answered renewalInfo for it."""
    state = session.get(RenewalState, cert.id)
    return (
        state is not None and state.ari_window is not None and cert.current_version_id is not None
    )


def claim_status(session: Session, cert: Certificate, new: CertStatus, *, conflict: str) -> None:
    """Moves ``cert`` to ``new`` only if its row still has the status this request read.

    A compare-and-set in the database (``UPDATE ... WHERE id = ? AND status = <read>``), so
    that of several requests that read the same status at once, in any number of API
    processes, exactly one moves it: on PostgreSQL the others wait for the winner's row
    lock and then find the status changed; on SQLite writers are serialized (see
    ``db/sqlite_writes``) and see the winner's commit. A loser gets :class:`Conflict`
    (``conflict`` says why) and its transaction writes nothing. The caller commits."""
    seen = cert.status
    target = transition(seen, new)
    taken = session.execute(
        update(Certificate)
        .where(Certificate.id == cert.id, Certificate.status == seen)
        .values(status=target, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(conflict)
    set_committed_value(cert, "status", target)


def reason_code(reason: str) -> int:
    if reason not in REVOCATION_REASONS:
        raise InvalidInput.field(
            "reason", f"must be an RFC 5280 reason: {', '.join(REVOCATION_REASONS)}"
        )
    return REVOCATION_REASONS[reason]


def get_certificate(session: Session, *, project_id: str, cert_id: str) -> Certificate:
    cert = session.get(Certificate, cert_id)
    if cert is None or cert.project_id != project_id:
        raise NotFound(f"no certificate {cert_id!r} in this project")
    return cert


def current_version(session: Session, cert: Certificate) -> CertificateVersion | None:
    if cert.current_version_id is None:
        return None
    return session.get(CertificateVersion, cert.current_version_id)


def latest_version(session: Session, cert: Certificate) -> CertificateVersion:
    version = session.scalar(
        select(CertificateVersion)
        .where(CertificateVersion.certificate_id == cert.id)
        .order_by(CertificateVersion.seq.desc())
        .limit(1)
    )
    if version is None:
        raise NotFound("the certificate has no version")
    return version


def to_out(session: Session, cert: Certificate) -> CertificateOut:
    return to_out_many(session, [cert])[0]


def to_out_many(session: Session, certs: list[Certificate]) -> list[CertificateOut]:
    """The API view of many certificates, with their current versions in one query."""
    ids = [c.current_version_id for c in certs if c.current_version_id]
    versions = (
        {
            v.id: v
            for v in session.scalars(
                select(CertificateVersion).where(CertificateVersion.id.in_(ids))
            )
        }
        if ids
        else {}
    )
    cert_ids = [c.id for c in certs if c.status == CertStatus.AWAITING_APPROVAL or c.error]
    requests = (
        {
            r.certificate_id: {"id": r.id, "status": r.status}
            for r in session.scalars(
                select(ApprovalRequest).where(ApprovalRequest.certificate_id.in_(cert_ids))
            )
        }
        if cert_ids
        else {}
    )
    chosen = profiles.profiles_of(session, [c.id for c in certs])
    return [
        _out(
            cert,
            versions.get(cert.current_version_id or ""),
            requests.get(cert.id),
            chosen.get(cert.id),
        )
        for cert in certs
    ]


def _out(
    cert: Certificate,
    version: CertificateVersion | None,
    request: dict[str, Any] | None,
    acme_profile: str | None = None,
) -> CertificateOut:
    current = None
    if version is not None and version.serial and version.not_before and version.not_after:
        current = VersionSummary(
            serial=version.serial,
            not_before=version.not_before,
            not_after=version.not_after,
            fingerprint_sha256=version.fingerprint_sha256 or "",
            issuer=version.issuer_id or cert.issuer_id,
        )
    return CertificateOut(
        id=cert.id,
        common_name=cert.common_name,
        sans=cert.names,
        key_type=cert.key_type,
        issuer=cert.issuer_id,
        auto_renew=cert.auto_renew,
        auto_renew_disabled_reason=cert.auto_renew_disabled_reason,
        renewal_window=cert.renewal_window,
        status=cert.status,
        pending_action=pending_action_of(cert.pending_action),
        current=current,
        renewal={"next_at": cert.next_renewal_at} if cert.next_renewal_at else None,
        error=CertificateError.model_validate(cert.error) if cert.error else None,
        approval_request=request,
        csr_provided=cert.csr_provided,
        acme_profile=acme_profile,
        fallback_issuers=cert.fallback_issuer_ids,
        managed=cert.managed,
        import_source=cert.import_source,
        imported_from=cert.import_meta,
        created_at=cert.created_at,
        updated_at=cert.updated_at,
    )


def request_dns_confirmation(
    session: Session, *, cert: Certificate, actor: Actor
) -> CertificateVersion:
    """An operator says the manual DNS records are in place: audited here; the caller
    commits, then signals the waiting workflow for the returned version."""
    require(actor, "operator", "Confirming DNS records")
    if cert.status != CertStatus.AWAITING_DNS:
        raise Conflict(f"the certificate is not waiting for DNS records (status {cert.status})")
    version = latest_version(session, cert)
    audit.record(
        session,
        type=EventType.DNS_MANUAL_CONFIRM_REQUESTED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={},
    )
    return version


def request_ca_check(session: Session, *, cert: Certificate, actor: Actor) -> CertificateVersion:
    """AD CS: ask the waiting workflow to check the CA now (e.g. right after approval).
    Audited here; the caller commits, then signals the workflow for the returned version."""
    require(actor, "operator", "Checking the CA")
    if cert.status != CertStatus.AWAITING_CA:
        raise Conflict(f"the certificate is not waiting for the CA (status {cert.status})")
    version = latest_version(session, cert)
    audit.record(
        session,
        type=EventType.ADCS_CHECK_REQUESTED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"request_id": (cert.pending_action or {}).get("request_id")},
    )
    return version
