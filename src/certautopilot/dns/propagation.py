"""Where a challenge record goes, and whether the zone's authoritative servers serve it yet."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from certautopilot.errors import DNSError, InvalidInput, PropagationTimeout

Nameserver = tuple[str, int]
_FIRST_INTERVAL, _GROWTH, _MAX_INTERVAL = 0.02, 1.5, 1.0


class InvalidNameserver(InvalidInput, ValueError):
    """A nameserver spec that does not parse (also a ValueError, for pydantic validators)."""


def challenge_name(identifier: str) -> str:
    """``_acme-challenge.<identifier>``; a wildcard's ``*.`` is dropped (RFC 8555 section 8.4)."""
    name = identifier.strip().rstrip(".")
    return "_acme-challenge." + name.removeprefix("*.")


def find_zone(name: str, zones: Sequence[str]) -> str | None:
    """The longest zone in ``zones`` that is ``name`` or a parent of it, as spelt in ``zones``.

    Case and trailing dots do not matter; ``*.a.example.test`` matches like ``a.example.test``.
    """
    wanted = _norm(name).removeprefix("*.")
    best: str | None = None
    best_len = -1
    for zone in zones:
        candidate = _norm(zone)
        inside = wanted == candidate or wanted.endswith("." + candidate) or candidate == ""
        if inside and len(candidate) > best_len:
            best, best_len = zone, len(candidate)
    return best


def parse_nameserver(spec: str) -> Nameserver:
    """``host``, ``host:port``, ``1.2.3.4:53``, ``[2001:db8::1]:53`` or bare ``2001:db8::1``."""
    text = spec.strip()
    host, port_text = text, ""
    if text.startswith("["):
        closing = text.find("]")
        rest = text[closing + 1 :]
        if closing < 0 or (rest and not rest.startswith(":")):
            raise InvalidNameserver(f"{spec!r} is not host, host:port or [IPv6]:port")
        host, port_text = text[1:closing], rest[1:]
        _require_ipv6(host, spec)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        _require_ipv6(text, spec)
    if not host or any(ch.isspace() or ch in "/[]" for ch in host):
        raise InvalidNameserver(f"{spec!r} has no valid host")
    return host.rstrip(".") or host, _port(port_text, spec)


def txt_visible(
    fqdn: str, value: str, nameservers: Sequence[Nameserver], timeout: float = 2.0
) -> bool:
    """True only when every server in ``nameservers`` answers the TXT ``fqdn`` with ``value``.

    Each server is asked directly (no recursion). NXDOMAIN, an empty answer, a refusal or a
    network error all count as "not visible". No servers at all is never "visible".
    """
    return bool(nameservers) and all(_serves(fqdn, value, ns, timeout) for ns in nameservers)


def wait_for_txt(
    fqdn: str,
    value: str,
    nameservers: Sequence[Nameserver],
    *,
    deadline_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    query_timeout: float = 2.0,
) -> None:
    """Poll until every server serves the value; :class:`PropagationTimeout` at the deadline.

    Polls at once, then after 20 ms growing by half each time up to 1 s. A server that has shown the
    value is not asked again.
    """
    if not nameservers:
        raise DNSError(f"no authoritative nameservers to check {fqdn} against")
    start = monotonic()
    missing = list(dict.fromkeys(nameservers))
    interval = _FIRST_INTERVAL
    while True:
        remaining = deadline_seconds - (monotonic() - start)
        per_query = max(0.05, min(query_timeout, remaining))
        missing = [ns for ns in missing if not _serves(fqdn, value, ns, per_query)]
        if not missing:
            return
        remaining = deadline_seconds - (monotonic() - start)
        if remaining <= 0:
            servers = ", ".join(_fmt(ns) for ns in missing)
            raise PropagationTimeout(
                f'TXT {fqdn} "{value}" not served by {servers} after {deadline_seconds:g}s'
            )
        sleep(min(interval, remaining))
        interval = min(interval * _GROWTH, _MAX_INTERVAL)


def resolve_nameservers(
    zone: str, *, resolver: dns.resolver.Resolver | None = None
) -> list[Nameserver]:
    """The zone's NS hosts resolved to IPv4 addresses, port 53, in NS order without repeats."""
    res = resolver or dns.resolver.Resolver()
    try:
        ns_answer = res.resolve(zone, dns.rdatatype.NS)
    except dns.exception.DNSException as exc:
        raise DNSError(f"cannot find the nameservers of {zone}: {type(exc).__name__}") from None
    found: list[Nameserver] = []
    for rdata in ns_answer:
        try:
            a_answer = res.resolve(rdata.target, dns.rdatatype.A)
        except dns.exception.DNSException:
            continue
        found += [(r.address, 53) for r in a_answer if (r.address, 53) not in found]
    if not found:
        raise DNSError(f"no IPv4 address for any nameserver of {zone}")
    return found


def _serves(fqdn: str, value: str, ns: Nameserver, timeout: float) -> bool:
    try:
        qname = dns.name.from_text(fqdn)
        query = dns.message.make_query(qname, dns.rdatatype.TXT)
        query.flags &= ~dns.flags.RD
        host = _address(ns[0])
        response, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=ns[1])
    except (dns.exception.DNSException, OSError, ValueError):
        return False
    if response.rcode() != dns.rcode.NOERROR:
        return False
    wanted = value.encode()
    return any(
        rrset.name == qname
        and rrset.rdtype == dns.rdatatype.TXT
        and any(b"".join(rdata.strings) == wanted for rdata in rrset)
        for rrset in response.answer
    )


def _address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0])


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _fmt(ns: Nameserver) -> str:
    return f"[{ns[0]}]:{ns[1]}" if ":" in ns[0] else f"{ns[0]}:{ns[1]}"


def _require_ipv6(host: str, spec: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise InvalidNameserver(f"{spec!r}: {host!r} is not an IPv6 address") from None


def _port(text: str, spec: str) -> int:
    if not text:
        return 53
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidNameserver(f"{spec!r}: port must be a number in 1..65535")
    return int(text)
