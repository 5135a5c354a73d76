"""Certificate requests: validation, zone resolution, versions, and the read model.

Every function takes the caller's session and never commits. Launching the durable
issuance happens through ``launcher`` inside the same transaction, so a request is
never stored without its job, nor a job started for a request that was rolled back.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.auth.service import Actor, require
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.names import base_name, normalize_name, normalize_names
from certautopilot.certificates.schemas import (
    REVOCATION_REASONS,
    CertificateIn,
    CertificateOut,
    VersionSummary,
)
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import find_zone
from certautopilot.errors import Conflict, InvalidInput, NotFound
from certautopilot.issuers.models import Issuer

MANUAL_DNS_REASON = (
    "Manual DNS: the challenge record has to be published by hand, so this certificate "
    "cannot renew on its own."
)
STATUSES = (
    "requested",
    "awaiting_approval",
    "awaiting_dns",
    "awaiting_ca",
    "issuing",
    "issued",
    "failed",
    "rejected",
    "revoked",
)
ACTIVE = ("requested", "awaiting_dns", "awaiting_ca", "issuing")


class IssuanceLauncher(Protocol):
    """Starts the durable issuance of a version in the caller's transaction."""

    def enqueue_issuance(self, session: Session, version_id: str) -> None: ...


@dataclass(frozen=True)
class ChallengeTarget:
    """Where the DNS-01 record for one name goes."""

    name: str
    zone_id: str
    zone_name: str
    challenge_name: str | None


def resolve_zones(
    names: list[str], zones: list[DnsZone], overrides: dict[str, Any]
) -> list[ChallengeTarget]:
    by_name = {z.name: z for z in zones}
    by_id = {z.id: z for z in zones}
    norm_overrides: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for raw, override in overrides.items():
        try:
            norm_overrides[normalize_name(raw)] = override
        except ValueError as exc:
            errors.append((f"challenge_overrides.{raw}", f"{raw!r} {exc}"))
    targets: list[ChallengeTarget] = []
    for i, name in enumerate(names):
        field = "common_name" if i == 0 else "sans"
        override = norm_overrides.get(name) or norm_overrides.get(base_name(name))
        if override is not None:
            zone = by_id.get(override.zone) or by_name.get(override.zone.lower().rstrip("."))
            if zone is None:
                errors.append(
                    (
                        f"challenge_overrides.{name}.zone",
                        f"no zone {override.zone!r} in this project",
                    )
                )
                continue
            targets.append(ChallengeTarget(name, zone.id, zone.name, override.challenge_name))
            continue
        zone_name = find_zone(base_name(name), list(by_name))
        if zone_name is None:
            errors.append(
                (
                    field,
                    f"{name} is not under any DNS zone of this project; add the "
                    "zone or a challenge_overrides entry for it",
                )
            )
            continue
        targets.append(ChallengeTarget(name, by_name[zone_name].id, zone_name, None))
    if errors:
        raise InvalidInput("; ".join(m for _, m in errors), errors)
    return targets


def _issuer_of(session: Session, project_id: str, issuer_id: str) -> Issuer:
    issuer = session.get(Issuer, issuer_id)
    if issuer is None or issuer.project_id != project_id:
        raise InvalidInput.field("issuer", f"no issuer {issuer_id!r} in this project")
    return issuer


def _unsupported(body: CertificateIn) -> None:
    if body.csr_pem is not None:
        raise InvalidInput.field("csr_pem", "bring-your-own CSR is not available yet")
    if body.override is not None:
        raise InvalidInput.field("override", "there is no policy warning to override")
    if body.distribution_targets:
        raise InvalidInput.field(
            "distribution_targets", "no such distribution target in this project"
        )


def create_certificate(
    session: Session,
    *,
    project_id: str,
    body: CertificateIn,
    actor: Actor,
    launcher: IssuanceLauncher,
) -> Certificate:
    require(actor, "operator", "Requesting a certificate")
    _unsupported(body)
    issuer = _issuer_of(session, project_id, body.issuer)
    names = normalize_names(body.common_name, body.sans)
    zones = list(session.scalars(select(DnsZone).where(DnsZone.project_id == project_id)))
    targets = resolve_zones(names, zones, body.challenge_overrides)
    manual_zones = {z.id for z in zones if z.provider == "manual"}
    manual = any(t.zone_id in manual_zones for t in targets)
    cert = Certificate(
        project_id=project_id,
        issuer_id=issuer.id,
        common_name=names[0],
        names=names,
        key_type=body.key_type,
        auto_renew=body.auto_renew and not manual,
        auto_renew_disabled_reason=MANUAL_DNS_REASON if manual else None,
        renewal_window=body.renewal_window.model_dump(exclude_none=True)
        if body.renewal_window
        else None,
        challenge_overrides={
            t.name: {
                "zone_id": t.zone_id,
                "challenge_name": t.challenge_name,
                "manual": t.zone_id in manual_zones,
            }
            for t in targets
        },
        status="requested",
        created_by=actor.user_id,
    )
    session.add(cert)
    session.flush()
    audit.record(
        session,
        type="cert.requested",
        actor=actor.email,
        project_id=project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"names": names, "key_type": body.key_type, "issuer": issuer.name},
    )
    _new_version(session, cert, reason="issue", launcher=launcher)
    return cert


def _new_version(
    session: Session, cert: Certificate, *, reason: str, launcher: IssuanceLauncher
) -> CertificateVersion:
    seq = (
        session.scalar(
            select(func.max(CertificateVersion.seq)).where(
                CertificateVersion.certificate_id == cert.id
            )
        )
        or 0
    ) + 1
    version = CertificateVersion(certificate_id=cert.id, seq=seq, reason=reason)
    session.add(version)
    session.flush()
    cert.status = "requested"
    cert.error = None
    cert.pending_action = None
    cert.step = "queued"
    launcher.enqueue_issuance(session, version.id)
    return version


def renew_certificate(
    session: Session, *, cert: Certificate, actor: Actor, launcher: IssuanceLauncher
) -> CertificateVersion:
    require(actor, "operator", "Renewing a certificate")
    if cert.status in ACTIVE:
        raise Conflict(f"the certificate is being issued already (status {cert.status})")
    if cert.status in ("revoked", "rejected", "awaiting_approval"):
        raise Conflict(f"a {cert.status} certificate cannot be renewed; request a new one")
    audit.record(
        session,
        type="cert.renewal_requested",
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={},
    )
    return _new_version(session, cert, reason="renew", launcher=launcher)


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


def _encode_cursor(created_at: datetime, cert_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), cert_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, cert_id = json.loads(raw)
        return datetime.fromisoformat(at), str(cert_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput.field("cursor", "is not a cursor this service handed out") from exc


def list_certificates(
    session: Session,
    *,
    project_id: str,
    status: str | None,
    expiring_before: datetime | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Certificate], str | None]:
    if status is not None and status not in STATUSES:
        raise InvalidInput.field("status", f"must be one of {', '.join(STATUSES)}")
    stmt = select(Certificate).where(Certificate.project_id == project_id)
    if status:
        stmt = stmt.where(Certificate.status == status)
    if expiring_before is not None:
        stmt = stmt.where(
            Certificate.not_after.is_not(None), Certificate.not_after < expiring_before
        )
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(
            or_(
                Certificate.common_name.like(like),
                func.lower(cast(Certificate.names, Text)).like(like),
            )
        )
    if cursor:
        at, last_id = _decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                Certificate.created_at < at,
                (Certificate.created_at == at) & (Certificate.id < last_id),
            )
        )
    stmt = stmt.order_by(Certificate.created_at.desc(), Certificate.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor


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
    return [_out(cert, versions.get(cert.current_version_id or "")) for cert in certs]


def _out(cert: Certificate, version: CertificateVersion | None) -> CertificateOut:
    current = None
    if version is not None and version.serial and version.not_before and version.not_after:
        current = VersionSummary(
            serial=version.serial,
            not_before=version.not_before,
            not_after=version.not_after,
            fingerprint_sha256=version.fingerprint_sha256 or "",
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
        pending_action=cert.pending_action,
        current=current,
        renewal={"next_at": cert.next_renewal_at} if cert.next_renewal_at else None,
        error=cert.error,
        created_at=cert.created_at,
        updated_at=cert.updated_at,
    )
