"""Where a challenge record goes, and whether the zone's authoritative servers serve it yet."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
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


class Outcome(StrEnum):
    """What one authoritative server said about the challenge's TXT name."""

    SERVES_VALUE = "serves_value"  # the expected value is among the TXT values
    OTHER_VALUES = "other_values"  # TXT values at the name, but not the expected one
    NXDOMAIN = "nxdomain"  # the name does not exist
    NODATA = "nodata"  # the name exists with no TXT record (or is a CNAME)
    TIMEOUT = "timeout"  # no answer in time
    SERVFAIL = "servfail"
    REFUSED = "refused"  # typically: the server is not authoritative for the zone
    DNSSEC_FAILURE = "dnssec_failure"  # SERVFAIL explained as DNSSEC (EDE code or CD retry)
    OTHER_RCODE = "other_rcode"  # NOTAUTH, FORMERR, NOTIMP...: named in ``detail``
    NETWORK_ERROR = "network_error"  # unreachable, connection refused, bad response


_LABELS = {
    Outcome.SERVES_VALUE: "serves the value",
    Outcome.OTHER_VALUES: "other values",
    Outcome.NXDOMAIN: "NXDOMAIN",
    Outcome.NODATA: "no TXT record (NODATA)",
    Outcome.TIMEOUT: "timeout",
    Outcome.SERVFAIL: "SERVFAIL",
    Outcome.REFUSED: "REFUSED",
    Outcome.DNSSEC_FAILURE: "DNSSEC failure",
    Outcome.OTHER_RCODE: "unexpected answer",
    Outcome.NETWORK_ERROR: "network error",
}

#: RFC 8914 Extended DNS Error codes that blame DNSSEC: unsupported DNSKEY algorithm (1) or DS
#: digest (2), indeterminate (5), bogus (6), signature expired (7) / not yet valid (8), DNSKEY
#: missing (9), RRSIGs missing (10), no zone key bit (11), NSEC missing (12).
DNSSEC_EDE_CODES = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 11, 12})
_MAX_VALUES = 20


@dataclass(frozen=True)
class Observation:
    """One server's answer to one TXT query, as public values (TXT challenge values are not
    secrets): what the timeline, the detail page and a timeout's message show per server."""

    server: str  # ``host:port`` (``[v6]:port``)
    outcome: Outcome
    values: tuple[str, ...] = ()  # the TXT values seen at the name (at most 20)
    detail: str = ""  # the EDE text, the rcode, the network error

    @property
    def serves(self) -> bool:
        return self.outcome is Outcome.SERVES_VALUE

    def summary(self) -> str:
        """``127.0.0.1:8053: NXDOMAIN``; other values are quoted after the label."""
        text = f"{self.server}: {_LABELS[self.outcome]}"
        if self.outcome is Outcome.OTHER_VALUES:
            text += " " + ", ".join(f'"{v}"' for v in self.values)
        return text + (f" ({self.detail})" if self.detail else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "outcome": str(self.outcome),
            "label": _LABELS[self.outcome],
            "values": list(self.values),
            "detail": self.detail,
            "summary": self.summary(),
        }


def observe(fqdn: str, value: str, ns: Nameserver, timeout: float = 2.0) -> Observation:
    """Asks ``ns`` directly (no recursion, EDNS on) for TXT ``fqdn`` and says what it saw.

    DNSSEC is named only when the server says so: a SERVFAIL carrying a DNSSEC Extended DNS
    Error code, or a SERVFAIL that turns into an answer when asked again with checking
    disabled (CD). An authoritative server does not validate, so this mostly shows when a
    validating resolver stands in as the zone's nameserver; a plain SERVFAIL stays SERVFAIL.
    """
    server = _fmt(ns)
    try:
        qname = dns.name.from_text(fqdn)
        response = _query(qname, ns, timeout)
    except dns.exception.Timeout:
        return Observation(server, Outcome.TIMEOUT, detail=f"no answer within {timeout:g}s")
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return Observation(server, Outcome.NETWORK_ERROR, detail=_error_text(exc))
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Observation(server, Outcome.NXDOMAIN)
    if rcode == dns.rcode.REFUSED:
        return Observation(server, Outcome.REFUSED, detail=_ede_text(response))
    if rcode == dns.rcode.SERVFAIL:
        return _servfail(qname, ns, timeout, server, response)
    if rcode != dns.rcode.NOERROR:
        return Observation(server, Outcome.OTHER_RCODE, detail=dns.rcode.to_text(rcode))
    values = _txt_values(response, qname)
    if value in values:
        return Observation(server, Outcome.SERVES_VALUE, tuple(values[:_MAX_VALUES]))
    if values:
        return Observation(server, Outcome.OTHER_VALUES, tuple(values[:_MAX_VALUES]))
    cname = response.get_rrset(response.answer, qname, dns.rdataclass.IN, dns.rdatatype.CNAME)
    detail = f"CNAME to {cname[0].target}" if cname else ""
    return Observation(server, Outcome.NODATA, detail=detail)


def txt_visible(
    fqdn: str, value: str, nameservers: Sequence[Nameserver], timeout: float = 2.0
) -> bool:
    """True only when every server in ``nameservers`` answers the TXT ``fqdn`` with ``value``.

    Each server is asked directly (no recursion). NXDOMAIN, an empty answer, a refusal or a
    network error all count as "not visible". No servers at all is never "visible".
    """
    return bool(nameservers) and all(observe(fqdn, value, ns, timeout).serves for ns in nameservers)


def wait_for_txt(
    fqdn: str,
    value: str,
    nameservers: Sequence[Nameserver],
    *,
    deadline_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    query_timeout: float = 2.0,
) -> list[Observation]:
    """Polls until every server serves the value and returns each server's last observation,
    in ``nameservers`` order; :class:`PropagationTimeout` at the deadline, carrying them too.

    Polls at once, then after 20 ms growing by half each time up to 1 s. A server that has
    shown the value is not asked again.
    """
    if not nameservers:
        raise DNSError(f"no authoritative nameservers to check {fqdn} against")
    start = monotonic()
    servers = list(dict.fromkeys(nameservers))
    latest: dict[Nameserver, Observation] = {}
    missing = servers
    interval = _FIRST_INTERVAL
    while True:
        remaining = deadline_seconds - (monotonic() - start)
        per_query = max(0.05, min(query_timeout, remaining))
        for ns in missing:
            latest[ns] = observe(fqdn, value, ns, per_query)
        missing = [ns for ns in missing if not latest[ns].serves]
        observations = [latest[ns] for ns in servers]
        if not missing:
            return observations
        remaining = deadline_seconds - (monotonic() - start)
        if remaining <= 0:
            seen = "; ".join(latest[ns].summary() for ns in missing)
            raise PropagationTimeout(
                f'TXT {fqdn} "{value}" not served after {deadline_seconds:g}s: {seen}',
                tuple(observations),
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


def _query(
    qname: dns.name.Name, ns: Nameserver, timeout: float, *, cd: bool = False
) -> dns.message.Message:
    query = dns.message.make_query(qname, dns.rdatatype.TXT, use_edns=0, payload=1232)
    query.flags &= ~dns.flags.RD
    if cd:
        query.flags |= dns.flags.CD
    response, _ = dns.query.udp_with_fallback(query, address_of(ns[0]), timeout=timeout, port=ns[1])
    return response


def _servfail(
    qname: dns.name.Name,
    ns: Nameserver,
    timeout: float,
    server: str,
    response: dns.message.Message,
) -> Observation:
    codes = _ede(response)
    if any(code in DNSSEC_EDE_CODES for code, _ in codes):
        return Observation(server, Outcome.DNSSEC_FAILURE, detail=_ede_text(response))
    try:
        unchecked = _query(qname, ns, timeout, cd=True)
    except (dns.exception.DNSException, OSError, ValueError):
        unchecked = None
    if unchecked is not None and unchecked.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        detail = "answers only with checking disabled (CD)"
        return Observation(server, Outcome.DNSSEC_FAILURE, detail=detail)
    return Observation(server, Outcome.SERVFAIL, detail=_ede_text(response))


def _txt_values(response: dns.message.Message, qname: dns.name.Name) -> list[str]:
    rrset = response.get_rrset(response.answer, qname, dns.rdataclass.IN, dns.rdatatype.TXT)
    if rrset is None:
        return []
    return sorted(b"".join(rdata.strings).decode("utf-8", "backslashreplace") for rdata in rrset)


def _ede(response: dns.message.Message) -> list[tuple[int, str]]:
    """The response's RFC 8914 Extended DNS Errors as ``(code, text)``."""
    return [
        (int(opt.code), opt.text or "")
        for opt in response.options
        if isinstance(opt, dns.edns.EDEOption)
    ]


def _ede_text(response: dns.message.Message) -> str:
    parts = []
    for code, text in _ede(response):
        try:
            name = dns.edns.EDECode(code).name.replace("_", " ").lower()
        except ValueError:
            name = "code"
        parts.append(f"EDE {code} {name}" + (f": {text}" if text else ""))
    return "; ".join(parts)


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def address_of(host: str) -> str:
    """An IP literal as it is, a host name as its first address (what dnspython can send to)."""
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
