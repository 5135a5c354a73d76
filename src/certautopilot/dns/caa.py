"""CAA (RFC 8659) with the account and method parameters of RFC 8657: which CAs a name's DNS
allows, read where the CA will read it, and whether an issuer may issue for the name.

Why the service checks: a CA must refuse a name whose CAA records do not name it (RFC 8659
§3), so a request the records forbid fails only after the order, the DNS challenge and the
wait. Preflight asks first and warns.

Where the records come from: the relevant RRset (§3) of a name is the CAA RRset of the name
itself or, if that is empty, of the closest parent that has one ("climbing"; a wildcard
``*.x`` is looked up as ``x``). Each name is asked on the authoritative servers of the
project zone that holds it (the same servers the DNS-01 check reads), with recursion off,
following a CNAME the server returns; a name above every project zone, or a CNAME target
outside them, is asked through the system resolver. Top-level domains are not asked (none
publishes CAA; asking would cost every request a query to the public root), a documented
deviation from climbing to the root.

How a set of records is read (§4.2, §4.3; RFC 8657 §3, §4):

* no relevant RRset: any CA may issue;
* a record with the critical flag (128) and a tag this module does not know: no CA may;
* a wildcard name is judged by its ``issuewild`` records when there are any, else by
  ``issue``; any other name by ``issue``; no such record: any CA may;
* a record allows the issuer when its issuer domain name is the issuer's CAA identity, its
  ``accounturi`` (if any) is the issuer's ACME account URL, and its ``validationmethods``
  (if any) lists ``dns-01``. An empty value (``;``) or one that does not parse allows none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from certautopilot.dns.propagation import Nameserver, address_of, find_zone

ISSUE, ISSUEWILD, IODEF = "issue", "issuewild", "iodef"
#: Tags this module understands; an unknown tag flagged critical forbids issuance (§4.1).
KNOWN_TAGS = frozenset({ISSUE, ISSUEWILD, IODEF, "issuemail", "issuevmc", "contactemail"})
CRITICAL = 128
METHOD = "dns-01"
MAX_CNAME_HOPS = 8
_TAG = re.compile(r"^[A-Za-z0-9]+$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_PARAM_VALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")


@dataclass(frozen=True)
class CaaRecord:
    flags: int
    tag: str
    value: str

    def to_text(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.flags} {self.tag} "{escaped}"'


@dataclass(frozen=True)
class IssueValue:
    """An ``issue``/``issuewild`` value; ``issuer`` None: it allows no CA (``;`` or bad)."""

    issuer: str | None
    params: Mapping[str, str] = field(default_factory=dict)


def parse_issue_value(text: str) -> IssueValue:
    """RFC 8659 §4.2 ``issue-value``: ``[issuer-domain-name] *(";" tag "=" value)``, spaces
    allowed around the separators. A value that does not parse allows no CA."""
    issuer_part, *param_parts = text.split(";")
    issuer = issuer_part.strip(" \t").rstrip(".").lower()
    if issuer and not all(_LABEL.match(label) for label in issuer.split(".")):
        return IssueValue(None)
    params: dict[str, str] = {}
    for raw in param_parts:
        part = raw.strip(" \t")
        if not part:
            continue
        tag, sep, value = part.partition("=")
        tag, value = tag.strip(" \t"), value.strip(" \t")
        if not sep or not _TAG.match(tag) or not _PARAM_VALUE.match(value):
            return IssueValue(None)
        params[tag.lower()] = value
    return IssueValue(issuer or None, params)


@dataclass(frozen=True)
class Lookup:
    """A name's relevant RRset: ``found_at`` is the name that holds it (None: no CAA
    anywhere up to the top-level domain); ``asked`` the names asked, each with where;
    ``error`` set when a name could not be asked (the answer is then unknown)."""

    name: str
    found_at: str | None
    records: tuple[CaaRecord, ...]
    asked: tuple[tuple[str, str], ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


#: Asks one name's CAA RRset: (records, where it was asked) or raises ``LookupFailed``.
Asker = Callable[[str], tuple[list[CaaRecord], str]]


class LookupFailed(Exception):
    """A CAA query got no usable answer (timeout, SERVFAIL, REFUSED...)."""


def _records(rrset: Any) -> list[CaaRecord]:
    return [
        CaaRecord(
            int(r.flags),
            r.tag.decode("ascii", "replace").lower(),
            r.value.decode("utf-8", "replace"),
        )
        for r in rrset
    ]


def _fmt(ns: Nameserver) -> str:
    return f"[{ns[0]}]:{ns[1]}" if ":" in ns[0] else f"{ns[0]}:{ns[1]}"


def ask_authoritative(
    fqdn: str, nameservers: Sequence[Nameserver], *, timeout: float = 2.0
) -> tuple[list[CaaRecord], str | None, str]:
    """The CAA records at ``fqdn`` on the first of ``nameservers`` that answers, recursion
    off. Returns (records, the CNAME target when the server answered with an alias whose
    target it does not hold, the server). Raises ``LookupFailed`` when none answers."""
    qname = dns.name.from_text(fqdn)
    errors: list[str] = []
    for ns in nameservers:
        query = dns.message.make_query(qname, dns.rdatatype.CAA, use_edns=0, payload=1232)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(
                query, address_of(ns[0]), timeout=timeout, port=ns[1]
            )
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            errors.append(f"{_fmt(ns)}: {exc or type(exc).__name__}")
            continue
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return [], None, _fmt(ns)
        if rcode != dns.rcode.NOERROR:
            errors.append(f"{_fmt(ns)}: {dns.rcode.to_text(rcode)}")
            continue
        target = qname
        for _ in range(MAX_CNAME_HOPS):
            found = response.get_rrset(
                response.answer, target, dns.rdataclass.IN, dns.rdatatype.CAA
            )
            if found is not None:
                return _records(found), None, _fmt(ns)
            alias = response.get_rrset(
                response.answer, target, dns.rdataclass.IN, dns.rdatatype.CNAME
            )
            if alias is None:
                break
            target = alias[0].target
        if target != qname:
            return [], target.to_text(omit_final_dot=True), _fmt(ns)
        return [], None, _fmt(ns)
    raise LookupFailed("; ".join(errors) or "no authoritative server to ask")


def ask_resolver(fqdn: str, *, timeout: float = 2.0) -> list[CaaRecord]:
    """The CAA records at ``fqdn`` through the system resolver (which follows CNAMEs)."""
    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    try:
        answer = resolver.resolve(fqdn, dns.rdatatype.CAA, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
        if isinstance(exc, dns.resolver.NXDOMAIN):
            return []
        raise LookupFailed(str(exc)) from exc
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        raise LookupFailed(str(exc) or type(exc).__name__) from exc
    return _records(answer.rrset) if answer.rrset is not None else []


def asker_for(
    zones: Mapping[str, Sequence[Nameserver]],
    *,
    timeout: float = 2.0,
    resolver: Callable[[str], list[CaaRecord]] | None = None,
) -> Asker:
    """Asks each name on the servers of the zone (of ``zones``: zone name -> its
    authoritative servers) that holds it, else through the resolver; memoized."""
    resolve = resolver or (lambda n: ask_resolver(n, timeout=timeout))
    seen: dict[str, tuple[list[CaaRecord], str]] = {}

    def ask(fqdn: str) -> tuple[list[CaaRecord], str]:
        if fqdn in seen:
            return seen[fqdn]
        zone = find_zone(fqdn, list(zones))
        if zone is None or not zones[zone]:
            result = (resolve(fqdn), "resolver")
        else:
            records, alias, server = ask_authoritative(fqdn, zones[zone], timeout=timeout)
            if alias is not None:  # an alias out of the servers' data: the resolver follows it
                records, server = resolve(alias), f"{server} -> {alias} (resolver)"
            result = (records, server)
        seen[fqdn] = result
        return result

    return ask


def climb(name: str, ask: Asker) -> Lookup:
    """The relevant RRset of ``name`` (§3): its own CAA RRset or its closest parent's."""
    base = name.strip().rstrip(".").lower().removeprefix("*.")
    labels = base.split(".")
    asked: list[tuple[str, str]] = []
    for i in range(len(labels) - 1):  # not the top-level domain (see the module docstring)
        candidate = ".".join(labels[i:])
        try:
            records, where = ask(candidate)
        except LookupFailed as exc:
            return Lookup(name, None, (), tuple(asked), f"{candidate}: {exc}")
        asked.append((candidate, where))
        if records:
            return Lookup(name, candidate, tuple(records), tuple(asked))
    return Lookup(name, None, (), tuple(asked))


def evaluate(
    found: Lookup, *, identity: str | None, account_uri: str | None, method: str = METHOD
) -> Verdict:
    """Whether an issuer whose CAA identity is ``identity`` (its ACME account
    ``account_uri``), validating with ``method``, may issue for ``found.name``."""
    if found.found_at is None:
        return Verdict(True, "no CAA record: any CA may issue")
    where = f"CAA at {found.found_at}"
    critical = [r for r in found.records if r.flags & CRITICAL and r.tag not in KNOWN_TAGS]
    if critical:
        return Verdict(
            False, f"{where} has a critical property {critical[0].tag!r}: no CA may issue"
        )
    wildcard = found.name.strip().startswith("*.")
    tag = ISSUEWILD if wildcard and any(r.tag == ISSUEWILD for r in found.records) else ISSUE
    considered = [r for r in found.records if r.tag == tag]
    if not considered:
        return Verdict(True, f"{where} has no {tag} property: any CA may issue")
    if identity is None:
        return Verdict(
            False,
            f"{where} names the CAs allowed to issue ({', '.join(r.value for r in considered)}); "
            "the issuer has no CAA identity to compare: set it on the issuer",
        )
    named = False
    refusals: list[str] = []
    for record in considered:
        value = parse_issue_value(record.value)
        if value.issuer != identity.lower():
            continue
        named = True
        uri = value.params.get("accounturi")
        if uri is not None and uri != account_uri:
            refusals.append(f"accounturi={uri} is another ACME account")
            continue
        methods = value.params.get("validationmethods")
        if methods is not None and method not in {m.strip() for m in methods.split(",")}:
            refusals.append(f"validationmethods={methods} does not allow {method}")
            continue
        return Verdict(True, f'{where} allows {identity} ({tag} "{record.value}")')
    if named:
        return Verdict(False, f"{where} names {identity} but {'; '.join(refusals)}")
    allowed = ", ".join(sorted({parse_issue_value(r.value).issuer or "(none)" for r in considered}))
    return Verdict(False, f"{where} allows only {allowed} to issue ({tag}), not {identity}")


def suggested_records(
    zone: str, issuers: Sequence[tuple[str, str | None]], *, method: str = METHOD
) -> list[str]:
    """Zone-file lines that allow each ``(caa identity, account URL)`` to issue, wildcard
    names included, bound to the account and to DNS-01 (RFC 8657)."""
    owner = zone.rstrip(".") + "."
    lines: list[str] = []
    for identity, account in issuers:
        params = ([f"accounturi={account}"] if account else []) + [f"validationmethods={method}"]
        value = "; ".join([identity, *params])
        for tag in (ISSUE, ISSUEWILD):
            lines.append(f"{owner} CAA {CaaRecord(0, tag, value).to_text()}")
    return lines
