"""CNAME delegation of DNS-01 challenges: where the TXT record of a name is really written.

A CA asking for ``_acme-challenge.<name>`` follows CNAMEs (RFC 8555 section 8.4 leaves
resolution to the DNS), so when that name is a CNAME the TXT record has to be written at
the end of the chain, in whichever project zone holds it; the zone of the name itself then
needs no credentials at all. ``resolve`` follows the chain with an injected ``lookup`` (the
tests give a dict), so it is pure; ``dns_lookup`` is the real one.

The chain is followed up to ``MAX_DEPTH`` hops and a loop is an error (:class:`CnameLoop`):
the CA could never resolve it either.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from certautopilot.dns.propagation import Nameserver, challenge_name, find_zone

#: ``lookup(fqdn)`` → the CNAME target of ``fqdn`` (no trailing dot), or None when it has none.
CnameLookup = Callable[[str], str | None]
MAX_DEPTH = 8
LOOKUP_TIMEOUT = 2.0


class CnameLoop(ValueError):
    """The CNAME chain of a challenge name loops or is longer than ``MAX_DEPTH``."""


@dataclass(frozen=True)
class Delegation:
    """Where the challenge of one identifier goes.

    ``record_name`` is the TXT name to write; ``zone`` the project zone holding it (as spelt
    in the zones given), None when no project zone does; ``delegated_from`` is the original
    ``_acme-challenge.<name>`` when a CNAME was followed, else None; ``chain`` every name
    from the original to ``record_name``.
    """

    name: str
    record_name: str
    zone: str | None
    delegated_from: str | None
    chain: tuple[str, ...]

    @property
    def broken(self) -> bool:
        """A CNAME was followed, but it ends outside every project zone."""
        return self.delegated_from is not None and self.zone is None


def follow(start: str, lookup: CnameLookup, *, max_depth: int = MAX_DEPTH) -> tuple[str, ...]:
    """The CNAME chain from ``start``: ``(start, target1, ..., final)``.

    Raises :class:`CnameLoop` when a name comes back or the chain has more than
    ``max_depth`` hops.
    """
    chain = [_norm(start)]
    while True:
        target = lookup(chain[-1])
        if target is None:
            return tuple(chain)
        target = _norm(target)
        if target in chain:
            raise CnameLoop(f"the CNAME chain of {chain[0]} loops: {' -> '.join([*chain, target])}")
        if len(chain) > max_depth:
            raise CnameLoop(
                f"the CNAME chain of {chain[0]} is longer than {max_depth} hops "
                f"({' -> '.join(chain[:3])} -> ...)"
            )
        chain.append(target)


def resolve(
    identifier: str, zones: Sequence[str], lookup: CnameLookup, *, max_depth: int = MAX_DEPTH
) -> Delegation:
    """The challenge of ``identifier`` (a wildcard shares its base name's challenge):
    the chain of ``_acme-challenge.<name>`` and the longest project zone holding its end.

    Without a CNAME the record stays at ``_acme-challenge.<name>`` in the name's own zone
    (None when there is none).
    """
    start = challenge_name(identifier).lower()
    chain = follow(start, lookup, max_depth=max_depth)
    final = chain[-1]
    return Delegation(
        name=identifier,
        record_name=final,
        zone=find_zone(final, zones),
        delegated_from=start if len(chain) > 1 else None,
        chain=chain,
    )


def suggest_target(identifier: str, zones: Mapping[str, bool]) -> dict[str, str] | None:
    """The CNAME to create so a name outside every project zone can be issued:
    ``{"cname": "_acme-challenge.<name>", "target": "_acme-challenge.<name>.<zone>"}``.

    ``zones`` maps each project zone to whether the service can write to it (a provider
    with credentials, not ``manual``). The rule: the shortest such zone, ties broken by
    name, so the suggestion is stable and one zone collects every delegated name; keeping
    the full name as a prefix means two delegated names never share a TXT name. None when
    the project has no writable zone (delegation could not help).
    """
    writable = sorted((z for z, ok in zones.items() if ok), key=lambda z: (len(z), z))
    if not writable:
        return None
    cname = challenge_name(identifier).lower()
    return {"cname": cname, "target": f"{cname}.{_norm(writable[0])}"}


def dns_lookup(
    zones: Mapping[str, Sequence[Nameserver]],
    *,
    resolver: dns.resolver.Resolver | None = None,
    timeout: float = LOOKUP_TIMEOUT,
) -> CnameLookup:
    """The real lookup: a name inside a project zone with ``nameservers`` is asked of those
    servers directly (no recursion: they are the truth, and a manual zone may be served
    nowhere else); any other name goes to the system resolver. Every failure (NXDOMAIN,
    no answer, a timeout) reads as "no CNAME": the record then stays where it was, and the
    propagation check reports what the servers really serve."""
    with_servers = [z for z, ns in zones.items() if ns]
    dead: set[Nameserver] = set()  # a server that timed out is not asked again by this lookup

    def lookup(fqdn: str) -> str | None:
        zone = find_zone(fqdn, list(zones))
        if zone is not None and zone in with_servers:
            return _ask_servers(fqdn, zones[zone], timeout, dead)
        return _ask_resolver(fqdn, resolver, timeout)

    return lookup


def _ask_servers(
    fqdn: str, servers: Sequence[Nameserver], timeout: float, dead: set[Nameserver]
) -> str | None:
    qname = dns.name.from_text(fqdn)
    for host, port in servers:
        if (host, port) in dead:
            continue
        query = dns.message.make_query(qname, dns.rdatatype.CNAME)
        query.flags &= ~dns.flags.RD
        try:
            address = _ip(host)
            response, _ = dns.query.udp_with_fallback(query, address, timeout=timeout, port=port)
        except (dns.exception.DNSException, OSError, ValueError):
            dead.add((host, port))
            continue
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            continue
        for rrset in response.answer:
            if rrset.name == qname and rrset.rdtype == dns.rdatatype.CNAME:
                return str(next(iter(rrset)).target)
        return None
    return None


def _ask_resolver(fqdn: str, resolver: dns.resolver.Resolver | None, timeout: float) -> str | None:
    res = resolver or dns.resolver.Resolver()
    try:
        answer = res.resolve(fqdn, dns.rdatatype.CNAME, lifetime=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    return str(next(iter(answer)).target)


def _ip(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:  # a host name in the zone's nameservers
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0])


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()
