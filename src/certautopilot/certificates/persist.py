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

import requests
from sqlalchemy.orm import Session

from certautopilot.certificates.models import Certificate
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.dns import persist
from certautopilot.dns.models import DnsZone
from certautopilot.dns.persist import AccountBinding, PersistState, ServerTxt
from certautopilot.dns.propagation import parse_nameserver, resolve_nameservers
from certautopilot.errors import Conflict, DNSError, IssuerError, TransientIssuerError
from certautopilot.issuers import service as issuers
from certautopilot.issuers.acme.client import get_transport
from certautopilot.issuers.acme.keys import jwk_thumbprint, load_account_key
from certautopilot.issuers.models import Issuer

__all__ = [
    "IssuerPersistInfo",
    "PersistDecision",
    "PersistReport",
    "certificate_persist_records",
    "decide_persist",
    "issuer_persist_info",
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


DirectoryFetch = Callable[[Issuer], Mapping[str, Any]]


def fetch_directory_meta(issuer: Issuer) -> Mapping[str, Any]:
    """The CA's directory ``meta`` as sent, unknown fields included (network I/O).

    The ACME library drops fields it does not know, such as ``issuerDomainNames``, so the
    directory is read here as plain JSON through the issuer's shared transport.
    """
    cfg = issuer.config
    transport = get_transport(cfg["directory_url"], cfg.get("ca_bundle_pem"))
    try:
        response = transport.session.get(
            transport.directory_url, verify=transport.verify, timeout=transport.timeout
        )
    except requests.RequestException as exc:
        raise TransientIssuerError(f"cannot read the CA's directory: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise TransientIssuerError(f"the CA's directory answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        raise IssuerError(f"{transport.directory_url} did not return an ACME directory")
    meta = body.get("meta")
    return meta if isinstance(meta, dict) else {}


def issuer_persist_info(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    issuer: Issuer,
    fetch_meta: DirectoryFetch = fetch_directory_meta,
) -> IssuerPersistInfo:
    """The issuer's domain names and account binding; reads the CA's directory."""
    if issuer.kind != "acme":
        raise Conflict(f"issuer {issuer.name} is not ACME: dns-persist-01 is an ACME challenge")
    account_url = issuer.config.get("account_url")
    if not account_url:
        raise Conflict(f"issuer {issuer.name} has no ACME account URL yet")
    thumbprint = jwk_thumbprint(load_account_key(issuers.account_key_pem(session, kek, issuer)))
    meta = fetch_meta(issuer)
    names, prefix = persist.directory_issuer_domains(meta)
    source = "issuerDomainNames"
    if not names:
        caa = meta.get("caaIdentities")
        names = persist.directory_issuer_domains({"issuerDomainNames": caa})[0]
        source = "caaIdentities" if names else "none"
    binding = AccountBinding(account_url, key_thumbprint=thumbprint, hash_prefix=prefix)
    return IssuerPersistInfo(names, source, binding)


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
    fetch_meta: DirectoryFetch = fetch_directory_meta,
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
    info = issuer_persist_info(session, kek, issuer=issuer, fetch_meta=fetch_meta)
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
