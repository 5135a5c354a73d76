"""Which DNS zone answers the DNS-01 challenge of each name, and at which record name.

Per name, in order: an explicit ``challenge_overrides`` entry wins; otherwise the CNAME
chain of ``_acme-challenge.<name>`` is followed (``dns.delegation``) and the TXT record is
written at its end, in the longest project zone holding it — so the name's own zone may be
a manual one or not in the project at all. A chain that ends outside every project zone is
a preflight warning (``dns.delegation_broken``), never a failed order; a loop is bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from certautopilot.certificates.names import base_name, normalize_name
from certautopilot.dns import delegation
from certautopilot.dns import service as dns_zones
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import challenge_name, find_zone
from certautopilot.errors import InvalidInput

DELEGATION_BROKEN = "dns.delegation_broken"
NO_ZONE = "dns.no_zone"


@dataclass(frozen=True)
class ChallengeTarget:
    """Where the DNS-01 record for one name goes."""

    name: str
    zone_id: str
    zone_name: str
    challenge_name: str | None
    delegated_from: str | None = None


@dataclass(frozen=True)
class ChallengeRoute:
    """What preflight shows per name: ``record_name`` in ``zone`` (None: no project zone),
    ``delegated_from`` the CNAME followed, ``delegate`` the CNAME to create instead."""

    name: str
    record_name: str
    zone: str | None
    delegated_from: str | None
    delegate: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "record_name": self.record_name,
            "zone": self.zone,
            "delegated_from": self.delegated_from,
            "delegate": self.delegate,
        }


@dataclass(frozen=True)
class Notice:
    """A preflight warning about DNS routing (policy's warning shape: code, field, message)."""

    code: str
    field: str
    message: str


@dataclass
class Routing:
    """``targets`` for the names that can be issued; ``unroutable`` the (field, message) of
    the names that cannot (no zone to write to), which creation refuses outright."""

    targets: list[ChallengeTarget] = field(default_factory=list)
    routes: list[ChallengeRoute] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    unroutable: list[tuple[str, str]] = field(default_factory=list)


def route_challenges(
    names: list[str],
    zones: list[DnsZone],
    overrides: dict[str, Any],
    lookup: delegation.CnameLookup | None = None,
) -> Routing:
    """Routes every name; raises InvalidInput for bad overrides and CNAME loops.

    ``lookup`` answers CNAME queries (None: no delegation is looked for). Lookups are
    memoized, so a wildcard and its apex (one challenge name) cost one chain.
    """
    by_name = {z.name: z for z in zones}
    by_id = {z.id: z for z in zones}
    writable = {z.name: not dns_zones.is_manual(z) for z in zones}  # the plugin's flag
    cached = _memo(lookup) if lookup is not None else None
    norm_overrides: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for raw, override in overrides.items():
        try:
            norm_overrides[normalize_name(raw)] = override
        except ValueError as exc:
            errors.append((f"challenge_overrides.{raw}", f"{raw!r} {exc}"))
    out = Routing()
    for i, name in enumerate(names):
        where = "common_name" if i == 0 else "sans"
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
            out.targets.append(ChallengeTarget(name, zone.id, zone.name, override.challenge_name))
            record = override.challenge_name or challenge_name(name)
            out.routes.append(ChallengeRoute(name, record.lower(), zone.name, None))
            continue
        own = find_zone(base_name(name), list(by_name))
        try:
            found = delegation.resolve(name, list(by_name), cached) if cached is not None else None
        except delegation.CnameLoop as exc:
            errors.append((where, str(exc)))
            continue
        if found is not None and found.zone is not None:
            zone = by_name[found.zone]
            delegated = found.delegated_from
            out.targets.append(
                ChallengeTarget(
                    name, zone.id, zone.name, found.record_name if delegated else None, delegated
                )
            )
            out.routes.append(ChallengeRoute(name, found.record_name, zone.name, delegated))
            continue
        hint = delegation.suggest_target(name, writable)
        start = challenge_name(name).lower()
        if found is not None and found.broken:
            message = (
                f"{found.delegated_from} is a CNAME to {found.record_name}, which is in no "
                "DNS zone of this project: the CA would look for the record there"
                + (f"; point it at {hint['target']} instead" if hint else "")
                + " (or add that zone)."
            )
            out.routes.append(
                ChallengeRoute(name, found.record_name, None, found.delegated_from, hint)
            )
            if own is None:
                out.unroutable.append((where, f"{name}: {message}"))
                continue
            out.notices.append(Notice(DELEGATION_BROKEN, where, f"{name}: {message}"))
            out.targets.append(ChallengeTarget(name, by_name[own].id, own, None))
            continue
        if own is not None:  # a name in its own zone, no delegation
            out.targets.append(ChallengeTarget(name, by_name[own].id, own, None))
            out.routes.append(ChallengeRoute(name, start, own, None))
            continue
        out.routes.append(ChallengeRoute(name, start, None, None, hint))
        message = (
            f"{name} is not under any DNS zone of this project; add the zone or a "
            "challenge_overrides entry for it"
            + (
                f", or delegate instead: create the CNAME {hint['cname']} -> {hint['target']}"
                if hint
                else ""
            )
        )
        out.unroutable.append((where, message))
    if errors:
        raise InvalidInput("; ".join(m for _, m in errors), errors)
    return out


def resolve_zones(
    names: list[str],
    zones: list[DnsZone],
    overrides: dict[str, Any],
    lookup: delegation.CnameLookup | None = None,
) -> list[ChallengeTarget]:
    """The targets of every name; InvalidInput when one has nowhere to be written."""
    routing = route_challenges(names, zones, overrides, lookup)
    if routing.unroutable:
        raise InvalidInput("; ".join(m for _, m in routing.unroutable), routing.unroutable)
    return routing.targets


def _memo(lookup: delegation.CnameLookup) -> Callable[[str], str | None]:
    seen: dict[str, str | None] = {}

    def cached(fqdn: str) -> str | None:
        if fqdn not in seen:
            seen[fqdn] = lookup(fqdn)
        return seen[fqdn]

    return cached
