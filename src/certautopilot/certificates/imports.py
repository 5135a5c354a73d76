"""Importing certificates the service did not issue (``POST …/imports``).

Each certificate read by :mod:`certautopilot.certificates.bundles` becomes an *unmanaged*
certificate (``managed`` false, automatic renewal off, never due) with one version whose
chain and key are stored like an issued one's (``certificates.material``: envelope
encrypted). A certificate whose leaf SHA-256 fingerprint the project already holds is
merged into it (its key added when the project lacked it), never duplicated. Every import
is audited (``cert.imported``, ``cert.import_merged``). The caller commits.

Imported certificates hang on the project's ``external`` issuer row (created on first use,
never listed among the issuers): an issuer nobody orders from, so the inventory, the
expiry counts and the expiry digest treat them like every other certificate.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates import bundles, material
from certautopilot.certificates.bundles import Parsed, Upload
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.schemas import ImportIn
from certautopilot.certificates.states import CertStatus, VersionStatus
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.dns.models import DnsZone
from certautopilot.errors import InvalidInput
from certautopilot.issuers.models import Issuer

EXTERNAL_KIND = "external"
EXTERNAL_NAME = "imported"
NOT_MANAGED = "imported: not managed by CertAutoPilot until adopted"
SOURCES = ("pem", "pkcs12", "certbot", "acme.sh", "upload")


@dataclass(frozen=True)
class Lineage:
    """What another tool (certbot, acme.sh) said of a certificate: matched on its names."""

    tool: str
    name: str
    names: tuple[str, ...] = ()
    acme_server: str | None = None
    authenticator: str | None = None
    key_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportResult:
    imported: list[dict[str, Any]] = field(default_factory=list)
    merged: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)


def external_issuer(session: Session, project_id: str) -> Issuer:
    found = session.scalar(
        select(Issuer).where(Issuer.project_id == project_id, Issuer.kind == EXTERNAL_KIND)
    )
    if found is not None:
        return found
    issuer = Issuer(
        id=new_id(),
        project_id=project_id,
        name=EXTERNAL_NAME,
        kind=EXTERNAL_KIND,
        status="external",
    )
    session.add(issuer)
    session.flush()
    return issuer


def _existing(
    session: Session, project_id: str, fingerprint: str
) -> tuple[Certificate, CertificateVersion] | None:
    row = session.execute(
        select(Certificate, CertificateVersion)
        .join(CertificateVersion, CertificateVersion.certificate_id == Certificate.id)
        .where(
            Certificate.project_id == project_id,
            CertificateVersion.fingerprint_sha256 == fingerprint,
        )
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def covering_zone(zones: list[DnsZone], name: str) -> DnsZone | None:
    """The project's zone with the longest name that ``name`` (a wildcard's base) is in."""
    base = name.removeprefix("*.").rstrip(".").lower()
    best: DnsZone | None = None
    for zone in zones:
        z = zone.name.rstrip(".").lower()
        if (base == z or base.endswith("." + z)) and (best is None or len(z) > len(best.name)):
            best = zone
    return best


def adoption(
    session: Session, *, project_id: str, names: list[str], lineage: Lineage | None
) -> dict[str, Any]:
    """Whether the certificate can be adopted with no person: an ACME issuer of the project
    on the same directory URL as the tool used, and a zone covering every name."""
    todo: list[str] = []
    issuer_id = None
    if lineage is None or not lineage.acme_server:
        todo.append("choose the issuer that should renew it (its ACME server is not known)")
    else:
        wanted = lineage.acme_server.rstrip("/")
        for issuer in session.scalars(
            select(Issuer).where(Issuer.project_id == project_id, Issuer.kind == "acme")
        ):
            if str(issuer.config.get("directory_url", "")).rstrip("/") == wanted:
                issuer_id = issuer.id
                break
        if issuer_id is None:
            todo.append(f"add an ACME issuer for {wanted} (none of the project's uses it)")
    zones = list(session.scalars(select(DnsZone).where(DnsZone.project_id == project_id)))
    zone_of: dict[str, str] = {}
    for name in names:
        zone = covering_zone(zones, name)
        if zone is None:
            todo.append(f"add a DNS zone covering {name}")
        else:
            zone_of[name] = zone.name
    if lineage is not None and lineage.authenticator in (
        "webroot",
        "standalone",
        "nginx",
        "apache",
    ):
        todo.append(
            f"{lineage.tool} validated with {lineage.authenticator} (HTTP-01); CertAutoPilot "
            "validates with DNS-01 through the zones above"
        )
    return {
        "automatic": issuer_id is not None and len(zone_of) == len(names),
        "issuer": issuer_id,
        "zones": zone_of,
        "todo": todo,
    }


def _lineage_for(parsed: Parsed, lineages: list[Lineage]) -> Lineage | None:
    names = set(parsed.names)
    for lineage in lineages:
        if lineage.names and set(lineage.names) == names:
            return lineage
    for lineage in lineages:
        if lineage.name in names:
            return lineage
    return None


def _summary(cert: Certificate, parsed: Parsed, now: datetime, had_key: bool) -> dict[str, Any]:
    leaf = parsed.leaf
    return {
        "id": cert.id,
        "source": parsed.source,
        "common_name": cert.common_name,
        "names": parsed.names,
        "issuer_dn": leaf.issuer.rfc4514_string(),
        "key_type": bundles.key_type_of(leaf),
        "not_before": parsed.not_before.isoformat(),
        "not_after": parsed.not_after.isoformat(),
        "fingerprint_sha256": parsed.fingerprint,
        "has_key": had_key,
        "expired": parsed.not_after <= now,
        "managed": cert.managed,
    }


def import_files(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    uploads: list[Upload],
    actor: Actor,
    now: datetime,
    source: str = "upload",
    lineages: list[Lineage] | None = None,
) -> ImportResult:
    """Reads ``uploads`` (422 naming the field on a bad one) and imports or merges each."""
    require(actor, "operator", "Importing certificates")
    if source not in SOURCES:
        raise InvalidInput.field("source", f"must be one of {', '.join(SOURCES)}")
    parsed_all = bundles.parse_uploads(uploads)
    lineages = lineages or []
    result = ImportResult()
    external: Issuer | None = None
    seen: dict[str, dict[str, Any]] = {}
    for parsed in parsed_all:
        fp = parsed.fingerprint
        lineage = _lineage_for(parsed, lineages)
        if fp in seen and not (parsed.key_pem and not seen[fp]["has_key"]):
            continue  # the same certificate twice in one import
        existing = _existing(session, project_id, fp)
        if existing is not None:
            cert, version = existing
            added_key = False
            if parsed.key_pem and version.key_secret_id is None:
                material.store_private_key(session, kek, version, parsed.key_pem)
                added_key = True
            if lineage is not None and not cert.managed:
                cert.import_meta = {**(cert.import_meta or {}), **_meta(lineage)}
            item = _summary(cert, parsed, now, version.key_secret_id is not None)
            item["added_key"] = added_key
            if not cert.managed:
                item["adoption"] = adoption(
                    session, project_id=project_id, names=cert.names, lineage=lineage
                )
            result.merged.append(item)
            seen[fp] = item
            audit.record(
                session,
                type=EventType.CERT_IMPORT_MERGED,
                actor=actor.email,
                project_id=project_id,
                subject_type="certificate",
                subject_id=cert.id,
                detail={"fingerprint_sha256": fp, "added_key": added_key, "source": source},
            )
            continue
        names = parsed.names
        if not names:
            result.refused.append(
                {"file": parsed.source, "error": "the certificate names no DNS name"}
            )
            continue
        external = external or external_issuer(session, project_id)
        cert = Certificate(
            id=new_id(),
            project_id=project_id,
            issuer_id=external.id,
            common_name=names[0][:253],
            names=names,
            key_type=bundles.key_type_of(parsed.leaf),
            auto_renew=False,
            auto_renew_disabled_reason=NOT_MANAGED,
            status=CertStatus.ISSUED,
            not_after=parsed.not_after,
            next_renewal_at=None,
            created_by=actor.user_id,
            managed=False,
            import_source=lineage.tool if lineage else source,
            import_meta=_meta(lineage) if lineage else None,
        )
        session.add(cert)
        version = CertificateVersion(
            id=new_id(),
            certificate_id=cert.id,
            seq=1,
            reason="import",
            status=VersionStatus.ISSUED,
            serial=format(parsed.leaf.serial_number, "x"),
            not_before=parsed.not_before,
            not_after=parsed.not_after,
            fingerprint_sha256=fp,
        )
        session.add(version)
        material.store_chain(session, kek, version, parsed.fullchain_pem())
        if parsed.key_pem:
            material.store_private_key(session, kek, version, parsed.key_pem)
        cert.current_version_id = version.id
        session.flush()
        item = _summary(cert, parsed, now, parsed.key_pem is not None)
        item["adoption"] = adoption(session, project_id=project_id, names=names, lineage=lineage)
        result.imported.append(item)
        seen[fp] = item
        audit.record(
            session,
            type=EventType.CERT_IMPORTED,
            actor=actor.email,
            project_id=project_id,
            subject_type="certificate",
            subject_id=cert.id,
            detail={
                "fingerprint_sha256": fp,
                "names": names,
                "source": cert.import_source,
                "has_key": parsed.key_pem is not None,
                "expired": parsed.not_after <= now,
                "not_after": parsed.not_after.isoformat(),
            },
        )
    return result


def _meta(lineage: Lineage) -> dict[str, Any]:
    return {
        "tool": lineage.tool,
        "lineage": lineage.name,
        "acme_server": lineage.acme_server,
        "authenticator": lineage.authenticator,
        "key_type": lineage.key_type,
        **lineage.extra,
    }


def import_body(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    body: ImportIn,
    actor: Actor,
    now: datetime,
) -> ImportResult:
    """The API's body: base64 files (a 422 naming the one that is not base64)."""
    require(actor, "operator", "Importing certificates")
    uploads = []
    for i, f in enumerate(body.files):
        try:
            data = base64.b64decode(f.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput.field(f"files[{i}].content_base64", "is not base64") from exc
        password = f.password.get_secret_value() if f.password else None
        uploads.append(Upload(name=f.name, data=data, password=password))
    lineages = [
        Lineage(
            tool=x.tool,
            name=x.name,
            names=tuple(n.lower() for n in x.names),
            acme_server=x.acme_server,
            authenticator=x.authenticator,
            key_type=x.key_type,
        )
        for x in body.lineages
    ]
    return import_files(
        session,
        kek,
        project_id=project_id,
        uploads=uploads,
        actor=actor,
        now=now,
        source=body.source,
        lineages=lineages,
    )
