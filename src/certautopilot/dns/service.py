"""DNS zones of a project, the provider that publishes in each, and challenge-zone lookup."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor
from certautopilot.certificates.names import normalize_name
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.dns.interfaces import DNSProvider
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import parse_nameserver
from certautopilot.dns.providers.manual import ManualProvider
from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot.dns.schemas import RFC2136Out, ZoneIn, ZoneOut
from certautopilot.errors import Conflict, InvalidInput, NotFound
from certautopilot.netguard import check_host


def _validate(body: ZoneIn) -> tuple[str, list[str]]:
    errors: list[tuple[str, str]] = []
    try:
        name = normalize_name(body.name)
        if name.startswith("*."):
            raise ValueError("must not be a wildcard")
    except ValueError as exc:
        errors.append(("name", f"{body.name!r} {exc}"))
        name = ""
    nameservers: list[str] = []
    for i, ns in enumerate(body.nameservers or []):
        try:
            host, port = parse_nameserver(ns)
            nameservers.append(f"{host}:{port}")
        except (ValueError, InvalidInput) as exc:
            errors.append((f"nameservers[{i}]", str(exc)))
    if body.provider == "rfc2136":
        if body.rfc2136 is None:
            errors.append(("rfc2136", "is required when provider is rfc2136"))
        else:
            try:
                base64.b64decode(body.rfc2136.tsig_secret, validate=True)
            except (binascii.Error, ValueError):
                errors.append(("rfc2136.tsig_secret", "must be base64, as tsig-keygen prints it"))
    elif body.rfc2136 is not None:
        errors.append(("rfc2136", "only applies when provider is rfc2136"))
    if errors:
        raise InvalidInput("the zone is not valid", errors)
    return name, nameservers


def create_zone(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, body: ZoneIn, actor: Actor
) -> DnsZone:
    name, nameservers = _validate(body)
    if body.rfc2136 is not None:
        check_host(body.rfc2136.server, field="rfc2136.server")
    for i, ns in enumerate(nameservers):
        check_host(ns.rsplit(":", 1)[0].strip("[]"), field=f"nameservers[{i}]")
    if session.scalar(
        select(DnsZone.id).where(DnsZone.project_id == project_id, DnsZone.name == name)
    ):
        raise Conflict(f"zone {name} exists in this project already")
    zone = DnsZone(
        id=new_id(),
        project_id=project_id,
        name=name,
        provider=body.provider,
        nameservers=nameservers,
        propagation_timeout_seconds=body.propagation_timeout_seconds,
    )
    if body.rfc2136 is not None:
        r = body.rfc2136
        zone.config = {
            "server": r.server,
            "port": r.port,
            "tsig_name": r.tsig_name,
            "tsig_algorithm": r.tsig_algorithm,
        }
        zone.credentials_secret_id = secrets.store_secret(
            session,
            kek,
            owner_table="dns_zones",
            owner_id=zone.id,
            purpose="tsig_secret",
            plaintext=r.tsig_secret.encode(),
        ).id
    session.add(zone)
    audit.record(
        session,
        type=EventType.ZONE_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="zone",
        subject_id=zone.id,
        detail={"name": name, "provider": body.provider},
    )
    return zone


def list_zones(session: Session, *, project_id: str) -> list[DnsZone]:
    stmt = select(DnsZone).where(DnsZone.project_id == project_id).order_by(DnsZone.name)
    return list(session.scalars(stmt))


def get_zone(session: Session, *, project_id: str, zone_id: str) -> DnsZone:
    zone = session.get(DnsZone, zone_id)
    if zone is None or zone.project_id != project_id:
        raise NotFound(f"no zone {zone_id!r} in this project")
    return zone


def provider_for(session: Session, kek: KeyEncryptionKey, zone: DnsZone) -> DNSProvider:
    """Builds the zone's provider with its credentials decrypted in memory only."""
    if zone.provider == "manual":
        return ManualProvider()
    if zone.provider == "rfc2136" and zone.credentials_secret_id:
        secret = secrets.reveal_secret(
            session,
            kek,
            zone.credentials_secret_id,
            owner_table="dns_zones",
            owner_id=zone.id,
            purpose="tsig_secret",
        ).decode()
        return RFC2136Provider(RFC2136Config(**zone.config, tsig_secret=secret))
    raise NotFound(f"zone {zone.name} has no usable provider {zone.provider!r}")


def to_out(zone: DnsZone) -> ZoneOut:
    rfc = RFC2136Out(**zone.config) if zone.provider == "rfc2136" else None
    return ZoneOut(
        id=zone.id,
        name=zone.name,
        provider=zone.provider,
        nameservers=zone.nameservers,
        propagation_timeout_seconds=zone.propagation_timeout_seconds,
        rfc2136=rfc,
    )
