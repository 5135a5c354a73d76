"""The dns-persist-01 record of each manual-zone name of a certificate, and what DNS says of it.

CertAutoPilot never writes ``_validation-persist`` records (draft-ietf-acme-dns-persist §4.5:
a person or their DNS operator publishes them); this module tells them exactly what to publish
and checks what the zone's authoritative servers serve. The pure rules live in
:mod:`certautopilot.dns.persist`; this module gathers their inputs (issuer row, account key
thumbprint, the CA's directory, the zones' servers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from certautopilot.certificates.models import Certificate
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.dns import persist
from certautopilot.dns.models import DnsZone
from certautopilot.dns.persist import AccountBinding, PersistState, ServerTxt
from certautopilot.dns.propagation import parse_nameserver, resolve_nameservers
from certautopilot.errors import Conflict, DNSError
from certautopilot.issuers import service as issuers
from certautopilot.issuers.interfaces import DNS_PERSIST, PersistAccount, PersistCapable
from certautopilot.issuers.models import Issuer

__all__ = [
    "IssuerPersistInfo",
    "PersistDecision",
    "PersistReport",
    "certificate_persist_records",
    "decide_persist",
    "issuer_persist_info",
    "persist_info",
]


@dataclass(frozen=True)
class IssuerPersistInfo:
    """What a record needs from the issuer: the CA's names for itself and the account.

    ``source`` says where ``issuer_domains`` came from: the directory's ``issuerDomainNames``
    (draft §3.2), its ``caaIdentities`` as a fallback for CAs on drafts before -02 (§3.2 makes
    every accepted name a caaIdentity, but not every caaIdentity an accepted name), or nothing.
    """

    issuer_domains: tuple[str, ...]
    source: str  # "issuerDomainNames" | "caaIdentities" | "none"
    account: AccountBinding
    directory_meta: Mapping[str, Any]


@dataclass(frozen=True)
class PersistReport:
    """One name of the certificate: the record to add, and what its servers serve now."""

    name: str
    zone: str
    record_name: str
    value: str | None
    status: PersistState
    detail: str
    persist_until: datetime | None
    issuer_domain: str | None
    servers: tuple[tuple[ServerTxt, PersistState | None], ...] = ()


def persist_info(account: PersistAccount) -> IssuerPersistInfo:
    """The issuer domain names and the account binding a CA's directory calls for."""
    meta = account.directory_meta
    names, prefix = persist.directory_issuer_domains(meta)
    source = "issuerDomainNames"
    if not names:
        caa = meta.get("caaIdentities")
        names = persist.directory_issuer_domains({"issuerDomainNames": caa})[0]
        source = "caaIdentities" if names else "none"
    binding = AccountBinding(
        account.account_url, key_thumbprint=account.key_thumbprint, hash_prefix=prefix
    )
    return IssuerPersistInfo(names, source, binding, meta)


def issuer_persist_info(
    session: Session, kek: KeyEncryptionKey, *, issuer: Issuer
) -> IssuerPersistInfo:
    """The issuer's domain names and account binding; reads the CA's directory (network)."""
    ca = issuers.connect(session, kek, issuer)
    if DNS_PERSIST not in ca.capabilities or not isinstance(ca, PersistCapable):
        raise Conflict(f"issuer {issuer.name}'s CA protocol has no dns-persist-01 challenge")
    return persist_info(ca.persist_account())


def _manual_names(session: Session, cert: Certificate) -> list[tuple[str, DnsZone]]:
    found: list[tuple[str, DnsZone]] = []
    for name in cert.names:
        target = cert.challenge_overrides.get(name) or {}
        if not target.get("manual"):
            continue
        zone = session.get(DnsZone, target.get("zone_id"))
        if zone is not None and zone.project_id == cert.project_id:
            found.append((name, zone))
    return found


def _nameservers(zone: DnsZone) -> tuple[list[tuple[str, int]], str | None]:
    if zone.nameservers:
        return [parse_nameserver(ns) for ns in zone.nameservers], None
    try:
        return resolve_nameservers(zone.name), None
    except DNSError as exc:
        return [], str(exc)


def certificate_persist_records(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    now: datetime,
    warn_days: int = persist.DEFAULT_WARN_DAYS,
    query: Callable[..., ServerTxt] = persist.query_txt,
) -> list[PersistReport]:
    """For each name of ``cert`` on a manual zone: the record to add and its status today.

    A wildcard and its base name share one record; it then carries ``policy=wildcard`` for
    both (draft §5.1), so one record serves the pair. Names on automatic zones are left out:
    their dns-01 records are written by the service. Reads the CA's directory and asks
    every authoritative server of each zone (network I/O; the session is only read).
    """
    manual = _manual_names(session, cert)
    if not manual:
        return []
    issuer = session.get(Issuer, cert.issuer_id)
    if issuer is None:
        raise Conflict("the certificate's issuer no longer exists")
    info = issuer_persist_info(session, kek, issuer=issuer)
    wildcard_bases = {n.removeprefix("*.") for n in cert.names if n.startswith("*.")}
    servers_of: dict[str, tuple[list[tuple[str, int]], str | None]] = {}
    reports: list[PersistReport] = []
    for name, zone in manual:
        base = name.removeprefix("*.")
        record_name = persist.record_name(name)
        if not info.issuer_domains:
            reports.append(
                PersistReport(
                    name=name,
                    zone=zone.name,
                    record_name=record_name,
                    value=None,
                    status=PersistState.UNAVAILABLE,
                    detail="the CA's directory advertises no issuerDomainNames (nor "
                    "caaIdentities): it does not offer dns-persist-01",
                    persist_until=None,
                    issuer_domain=None,
                )
            )
            continue
        spec = persist.build_record(
            name,
            issuer_domain=info.issuer_domains[0],
            account=info.account,
            wildcard=base in wildcard_bases,
        )
        if zone.id not in servers_of:
            servers_of[zone.id] = _nameservers(zone)
        nameservers, why_none = servers_of[zone.id]
        check = persist.check_authoritative(
            name,
            nameservers,
            issuer_domains=info.issuer_domains,
            account=info.account,
            now=now,
            warn_days=warn_days,
            query=query,
        )
        detail = check.status.detail
        if why_none:
            detail = f"{detail} ({why_none}; set the zone's nameservers)"
        if info.source == "caaIdentities":
            detail += (
                "; the CA's directory advertises no issuerDomainNames, so the issuer name "
                "comes from its caaIdentities and may not be one it accepts"
            )
        reports.append(
            PersistReport(
                name=name,
                zone=zone.name,
                record_name=record_name,
                value=spec.value,
                status=check.status.state,
                detail=detail,
                persist_until=check.status.persist_until,
                issuer_domain=info.issuer_domains[0],
                servers=tuple(
                    (answer, verdict.state if verdict else None)
                    for answer, verdict in check.servers
                ),
            )
        )
    return reports


@dataclass(frozen=True)
class PersistDecision:
    """Whether to answer an offered dns-persist-01 challenge instead of waiting for a person.

    ``answer`` only when the challenge is well formed (draft §3.1, §3.2) and the record checks
    ``ok`` or ``expires_soon`` on every authoritative server that answered; ``detail`` says
    why not otherwise, for the timeline.
    """

    answer: bool
    state: PersistState
    detail: str


def decide_persist(
    challenge: Mapping[str, Any],
    *,
    name: str,
    directory_meta: Mapping[str, Any],
    account: AccountBinding,
    nameservers: Sequence[tuple[str, int]],
    now: datetime,
    warn_days: int = persist.DEFAULT_WARN_DAYS,
    query: Callable[..., ServerTxt] = persist.query_txt,
) -> PersistDecision:
    """Check the record the CA will read for ``name`` before telling the CA to read it.

    The CA would fail the authorization on a bad record (draft §9.3.1), and a failed
    authorization fails the order; checking first keeps the manual dns-01 path open instead.
    """
    directory_names = persist.directory_issuer_domains(directory_meta)[0]
    try:
        issuer_domains = persist.challenge_issuer_domains(challenge, directory_names)
    except persist.MalformedRecord as exc:
        return PersistDecision(False, PersistState.MALFORMED, f"malformed challenge: {exc}")
    check = persist.check_authoritative(
        name,
        nameservers,
        issuer_domains=issuer_domains,
        account=account,
        now=now,
        warn_days=warn_days,
        query=query,
    )
    return PersistDecision(check.status.usable, check.status.state, check.status.detail)
