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
from certautopilot.dns.propagation import Nameserver, challenge_name, find_zone, parse_nameserver
from certautopilot.errors import DNSError, InvalidInput

DELEGATION_BROKEN = "dns.delegation_broken"
NO_ZONE = "dns.no_zone"
ZONE_DISABLED = "dns.zone_disabled"


@dataclass(frozen=True)
class ChallengeTarget:
    """Where the DNS-01 record for one name goes."""

    name: str
    zone_id: str
    zone_name: str
    challenge_name: str | None
    delegated_from: str | None = None
    # an explicit ``challenge_overrides`` entry: kept as is when a renewal routes again
    explicit: bool = False
    # a broken delegation accepted at creation (an admin's override): the name's own zone
    fallback: bool = False


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
    the names that cannot (no zone to write to) and ``disabled`` of those routed to a zone
    an admin disabled; creation refuses both outright (:attr:`refused`)."""

    targets: list[ChallengeTarget] = field(default_factory=list)
    routes: list[ChallengeRoute] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    unroutable: list[tuple[str, str]] = field(default_factory=list)
    disabled: list[tuple[str, str]] = field(default_factory=list)

    @property
    def refused(self) -> list[tuple[str, str]]:
        return self.unroutable + self.disabled


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
            out.targets.append(
                ChallengeTarget(
                    name, zone.id, zone.name, override.challenge_name, None, explicit=True
                )
            )
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
            out.targets.append(ChallengeTarget(name, by_name[own].id, own, None, fallback=True))
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
    _set_aside_disabled(out, names, by_id)
    return out


def _set_aside_disabled(out: Routing, names: list[str], by_id: dict[str, DnsZone]) -> None:
    """Moves the targets in a disabled zone to ``out.disabled`` (nothing is written there)."""
    fields: dict[str, str] = {}
    for i, name in enumerate(names):
        fields.setdefault(name, "common_name" if i == 0 else "sans")
    kept = []
    for t in out.targets:
        zone = by_id[t.zone_id]
        if zone.enabled:
            kept.append(t)
        else:
            out.disabled.append((fields[t.name], f"{t.name}: {dns_zones.disabled_message(zone)}"))
    out.targets = kept


def resolve_zones(
    names: list[str],
    zones: list[DnsZone],
    overrides: dict[str, Any],
    lookup: delegation.CnameLookup | None = None,
) -> list[ChallengeTarget]:
    """The targets of every name; InvalidInput when one has nowhere to be written."""
    routing = route_challenges(names, zones, overrides, lookup)
    if routing.refused:
        raise InvalidInput("; ".join(m for _, m in routing.refused), routing.refused)
    return routing.targets


def _memo(lookup: delegation.CnameLookup) -> Callable[[str], str | None]:
    seen: dict[str, str | None] = {}

    def cached(fqdn: str) -> str | None:
        if fqdn not in seen:
            seen[fqdn] = lookup(fqdn)
        return seen[fqdn]

    return cached


def reroute(
    names: list[str],
    zones: list[DnsZone],
    stored: dict[str, Any],
    manual_zone_ids: frozenset[str],
    lookup: delegation.CnameLookup | None,
) -> dict[str, dict[str, Any]]:
    """The routing of one issuance, found again from the DNS (a renewal follows a CNAME
    added or changed since the certificate was requested), in the stored shape
    (``Certificate.challenge_overrides``: ``zone_id``, ``challenge_name``, ``manual``,
    ``delegated_from``, ``explicit``, ``fallback``, ``zone``).

    An explicit ``challenge_overrides`` entry is kept as stored. A name whose zone is
    disabled raises DNSError naming the zone (nothing may be written there). A delegation
    that now ends outside every project zone raises DNSError naming the name and the
    CNAME's target, unless the stored routing already fell back to the name's own zone for
    that broken delegation (an admin accepted the preflight warning): then it falls back
    again, as preflight did. Creation stored the ``explicit`` flag; for a routing stored
    before it, an entry is explicit when it names a challenge name or a zone other than the
    name's own, without a CNAME followed.
    """
    by_id = {z.id: z for z in zones}
    zone_names = [z.name for z in zones]
    out: dict[str, dict[str, Any]] = {}
    others: list[str] = []
    off: list[str] = []
    for name in names:
        entry = stored.get(name)
        if entry and _is_explicit(name, entry, by_id, zone_names):
            zone = by_id.get(entry["zone_id"])
            out[name] = {**entry, "explicit": True, "zone": zone.name if zone else None}
            if zone is not None and not zone.enabled:
                off.append(f"{name}: {dns_zones.disabled_message(zone)}")
        else:
            others.append(name)
    routing = Routing()
    if others:
        try:
            routing = route_challenges(others, zones, {}, lookup)
        except InvalidInput as exc:  # a CNAME loop
            raise DNSError(f"the DNS-01 challenge can no longer be routed: {exc}") from exc
    off += [m for _, m in routing.disabled]
    if off:
        raise DNSError("no DNS-01 record can be written: " + "; ".join(off))
    if not others:
        return out
    problems = [m for _, m in routing.unroutable]
    notices = {n.message.split(": ", 1)[0]: n.message for n in routing.notices}
    for t in routing.targets:
        if t.fallback and not (stored.get(t.name) or {}).get("fallback"):
            problems.append(notices.get(t.name, f"{t.name}: the CNAME delegation is broken"))
            continue
        out[t.name] = {
            "zone_id": t.zone_id,
            "challenge_name": t.challenge_name,
            "manual": t.zone_id in manual_zone_ids,
            "delegated_from": t.delegated_from,
            "explicit": False,
            "fallback": t.fallback,
            "zone": t.zone_name,
        }
    if problems:
        raise DNSError(
            "the DNS-01 challenge routing changed since the certificate was requested: "
            + "; ".join(problems)
        )
    return out


def _is_explicit(
    name: str, entry: dict[str, Any], by_id: dict[str, DnsZone], zone_names: list[str]
) -> bool:
    if "explicit" in entry:
        return bool(entry["explicit"])
    if entry.get("delegated_from") or entry.get("fallback"):
        return False
    zone = by_id.get(entry.get("zone_id", ""))
    if zone is None:  # its zone is gone: route it again
        return False
    return bool(entry.get("challenge_name")) or zone.name != find_zone(base_name(name), zone_names)


def cname_lookup_for(zones: list[DnsZone]) -> delegation.CnameLookup:
    """CNAMEs asked of each zone's own ``nameservers`` when it has some, else the system
    resolver (``dns.delegation.dns_lookup``)."""
    servers: dict[str, list[Nameserver]] = {}
    for z in zones:
        try:
            servers[z.name] = [parse_nameserver(ns) for ns in z.nameservers or []]
        except ValueError:  # validated when the zone was stored; never block a request
            servers[z.name] = []
    return delegation.dns_lookup(servers)
