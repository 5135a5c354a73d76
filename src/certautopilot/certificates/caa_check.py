"""Preflight's CAA check: may the chosen ACME issuer (its CAA identity, its account) issue
for each name, as the names' CAA records say (``dns.caa`` reads and judges them)?

A name the records forbid is a ``caa.not_allowed`` warning on ``issuer``: the CA would
refuse the order after the challenge, so operators are stopped and an admin may override
(the records may be about to change). A name whose records could not be read is a note:
DNS trouble is not a reason to refuse a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certautopilot.dns import caa
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import Nameserver, parse_nameserver, resolve_nameservers
from certautopilot.dns.schemas import ZoneCaaIssuerOut, ZoneCaaOut
from certautopilot.errors import CertAutoPilotError
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer

NOT_ALLOWED = "caa.not_allowed"


@dataclass(frozen=True)
class CaaCheck:
    name: str
    found_at: str | None
    records: tuple[str, ...]
    allowed: bool | None  # None: the records could not be read
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "found_at": self.found_at,
            "records": list(self.records),
            "allowed": self.allowed,
            "detail": self.detail,
        }


def zone_servers(zones: Sequence[DnsZone]) -> dict[str, list[Nameserver]]:
    """Each zone's authoritative servers: its own list, else its NS records (empty when
    they cannot be found: its names are then asked through the resolver)."""
    found: dict[str, list[Nameserver]] = {}
    for zone in zones:
        if zone.nameservers:
            found[zone.name] = [parse_nameserver(ns) for ns in zone.nameservers]
            continue
        try:
            found[zone.name] = list(resolve_nameservers(zone.name))
        except CertAutoPilotError:
            found[zone.name] = []
    return found


def check_names(
    issuer: Issuer,
    names: Sequence[str],
    zones: Sequence[DnsZone],
    *,
    ask: caa.Asker | None = None,
) -> list[CaaCheck]:
    """One check per name, for an issuer that validates with DNS-01 (others: none)."""
    if not issuers.has(issuer, issuer_port.DNS01):
        return []
    ask = ask or caa.asker_for(zone_servers(zones))
    identity = issuers.caa_identity(issuer)
    account = issuer.config.get("account_url")
    checks = []
    for name in names:
        found = caa.climb(name, ask)
        records = tuple(r.to_text() for r in found.records)
        if found.error is not None:
            detail = f"CAA of {name} could not be read ({found.error}); the CA will read it"
            checks.append(CaaCheck(name, None, records, None, detail))
            continue
        verdict = caa.evaluate(found, identity=identity, account_uri=account)
        checks.append(CaaCheck(name, found.found_at, records, verdict.allowed, verdict.reason))
    return checks


def zone_report(
    zone: DnsZone, project_issuers: Sequence[Issuer], *, ask: caa.Asker | None = None
) -> ZoneCaaOut:
    """The zone page's CAA panel: the records at its apex (read on its authoritative
    servers) judged for each of ``project_issuers`` that validates with DNS-01, and the
    records that would allow every one whose CAA identity is known."""
    ask = ask or caa.asker_for(zone_servers([zone]))
    found = caa.climb(zone.name, ask)
    acme = [i for i in project_issuers if issuers.has(i, issuer_port.DNS01)]
    rows = []
    for issuer in acme:
        identity, account = issuers.caa_identity(issuer), issuer.config.get("account_url")
        if found.error is not None:
            allowed, detail = None, f"could not be read: {found.error}"
        else:
            verdict = caa.evaluate(found, identity=identity, account_uri=account)
            allowed, detail = verdict.allowed, verdict.reason
        rows.append(
            ZoneCaaIssuerOut(
                issuer_id=issuer.id,
                issuer=issuer.name,
                caa_identity=identity,
                account_url=account,
                allowed=allowed,
                detail=detail,
            )
        )
    pairs = [(r.caa_identity, r.account_url) for r in rows if r.caa_identity]
    return ZoneCaaOut(
        zone=zone.name,
        found_at=found.found_at,
        records=[r.to_text() for r in found.records],
        error=found.error,
        issuers=rows,
        suggested=caa.suggested_records(zone.name, pairs),
    )
