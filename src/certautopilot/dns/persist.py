"""dns-persist-01: the one persistent TXT record that binds a name to an ACME account.

Implements the client side of draft-ietf-acme-dns-persist-02 ("the draft" below): the record
``_validation-persist.<name>`` whose RDATA is an RFC 8659 §4.2 issue-value naming the CA (its
issuer domain name) and the account (``accounturi``), optionally ``policy=wildcard`` and
``persistUntil=<unix seconds>``. CertAutoPilot never writes this record: a person adds it once
to a manual zone, and the service shows the exact value, checks it on the authoritative
servers and answers the challenge when the CA offers it.

Everything here is pure (time is passed in) except :func:`query_txt`, which asks one server.

Draft versions: -02 made ``accounturi`` a hashed URI under the CA's ``accountHashPrefix``
(§4.1 item 3); -00/-01 used the plain account URL. A CA that advertises
``accountHashPrefix`` gets the -02 form, any other CA the plain URL (see
:class:`AccountBinding`). The challenge's name list is ``issuerDomainNames`` in -02 and
``issuer-domain-names`` before; both are read.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import idna
from josepy.b64 import b64encode

from certautopilot.dns.propagation import address_of

__all__ = [
    "CHALLENGE_TYPE",
    "LABEL",
    "AccountBinding",
    "MalformedRecord",
    "PersistCheck",
    "PersistRecord",
    "PersistSpec",
    "PersistState",
    "PersistStatus",
    "ServerTxt",
    "build_record",
    "challenge_issuer_domains",
    "check_authoritative",
    "covers",
    "directory_issuer_domains",
    "evaluate",
    "hashed_account_uri",
    "normalize_domain",
    "parse_record",
    "query_txt",
    "record_name",
    "zone_file_line",
]

CHALLENGE_TYPE: Final = "dns-persist-01"
LABEL: Final = "_validation-persist"
MAX_ISSUER_DOMAINS: Final = 10  # draft §3.1
DEFAULT_WARN_DAYS: Final = 30
_TAG = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9])*$")  # RFC 8659 §4.2 tag
_VALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")  # RFC 8659 §4.2 value: no space, no ';'
_DIGITS = re.compile(r"^[0-9]+$")


class MalformedRecord(ValueError):
    """A TXT value that is not a dns-persist-01 record (draft §4.1, §9.3.1 "malformed")."""


def normalize_domain(name: str) -> str:
    """The draft's §9.2 normal form: case-folded, NFC, A-labels, no trailing dot."""
    text = unicodedata.normalize("NFC", name.strip().casefold()).rstrip(".")
    if not text:
        raise ValueError("empty domain name")
    try:
        return idna.encode(text, uts46=False).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{name!r} is not a valid domain name ({exc})") from exc


def record_name(name: str) -> str:
    """``_validation-persist.<name>`` (draft §4); a wildcard's ``*.`` is dropped (§4.1 item 3.2)."""
    return f"{LABEL}.{normalize_domain(name.strip().removeprefix('*.'))}"


def hashed_account_uri(
    prefix: str, domain: str, thumbprint: str, account_url: str, *, alg: str = "sha-256"
) -> str:
    """The -02 hashed accounturi (draft §4.1 item 3): ``<prefix><alg>/<b64url(H(...))>``.

    ``H = SHA-256(len(domain) || domain || thumbprint || account_url)`` where ``domain`` is the
    record's own FQDN in §9.2 form or ``*`` (the domain-omitted opt-out) and ``thumbprint`` the
    43-character RFC 7638 thumbprint as ACME key authorizations spell it.
    """
    if alg != "sha-256":
        raise ValueError(f"unsupported hash algorithm {alg!r}: only sha-256 is mandatory")
    domain_octets = (domain if domain == "*" else normalize_domain(domain)).encode("ascii")
    if len(domain_octets) > 255:
        raise ValueError("domain name longer than 255 octets")
    data = bytes([len(domain_octets)]) + domain_octets
    data += thumbprint.encode("ascii") + account_url.encode("ascii")
    return f"{prefix}{alg}/{b64encode(hashlib.sha256(data).digest()).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class AccountBinding:
    """How an account is named in ``accounturi``.

    With ``hash_prefix`` (the CA's directory ``accountHashPrefix``) it is the -02 hashed URI
    over ``key_thumbprint`` and ``account_url``; without, the -01 plain ``account_url``.
    """

    account_url: str
    key_thumbprint: str | None = None
    hash_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.hash_prefix and not self.key_thumbprint:
            raise ValueError("a hashed accounturi needs the account key thumbprint")

    def record_uri(self, domain: str, *, any_domain: bool = False) -> str:
        """The value to publish at ``domain``'s record (``any_domain``: the §4.1 ``*`` form)."""
        if not self.hash_prefix or not self.key_thumbprint:
            return self.account_url
        target = "*" if any_domain else domain.removeprefix("*.")
        return hashed_account_uri(self.hash_prefix, target, self.key_thumbprint, self.account_url)

    def accepted_uris(self, domain: str) -> frozenset[str]:
        """Every value the CA accepts for this account at ``domain`` (draft §4.2)."""
        if not self.hash_prefix:
            return frozenset({self.account_url})
        return frozenset({self.record_uri(domain), self.record_uri(domain, any_domain=True)})


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """One parsed record. ``extras`` keeps parameters the draft does not define (§4.1 item 1)."""

    issuer_domain: str
    account_uri: str
    wildcard: bool = False
    persist_until: int | None = None
    policy: str | None = None
    extras: tuple[tuple[str, str], ...] = ()

    def to_text(self) -> str:
        """The RDATA in the draft's spelling: ``issuer; accounturi=...; policy=...``."""
        parts = [self.issuer_domain, f"accounturi={self.account_uri}"]
        policy = "wildcard" if self.wildcard else self.policy
        if policy:
            parts.append(f"policy={policy}")
        if self.persist_until is not None:
            parts.append(f"persistUntil={self.persist_until}")
        parts += [f"{tag}={value}" for tag, value in self.extras]
        return "; ".join(parts)

    @property
    def expires_at(self) -> datetime | None:
        """``persistUntil`` as a time; one past year 9999 is shown as the last representable."""
        if self.persist_until is None:
            return None
        try:
            return datetime.fromtimestamp(self.persist_until, UTC)
        except (OverflowError, ValueError, OSError):
            return datetime.max.replace(tzinfo=UTC)


def parse_record(text: str) -> PersistRecord:
    """Parse TXT RDATA (already joined from its strings) as an issue-value (draft §4.1).

    Tolerant where the draft is: whitespace around ``;`` and ``=``, the case of tags and of the
    ``policy`` value, a trailing dot or upper case in the issuer domain name, unknown
    parameters (kept in ``extras``). Strict where it is: a missing ``accounturi``, a repeated
    parameter or a ``persistUntil`` that is not a base-10 integer raise :class:`MalformedRecord`.
    """
    issuer_part, *param_parts = text.split(";")
    issuer_text = issuer_part.strip(" \t")
    if not issuer_text:
        raise MalformedRecord("no issuer domain name before the first ';'")
    try:
        issuer = normalize_domain(issuer_text)
    except ValueError as exc:
        raise MalformedRecord(f"issuer domain name: {exc}") from None
    seen: dict[str, tuple[str, str]] = {}
    for raw in param_parts:
        part = raw.strip(" \t")
        if not part:
            continue
        tag, sep, value = part.partition("=")
        tag, value = tag.strip(" \t"), value.strip(" \t")
        if not sep or not _TAG.match(tag) or not _VALUE.match(value):
            raise MalformedRecord(f"{part!r} is not a tag=value parameter")
        if tag.lower() in seen:
            raise MalformedRecord(f"parameter {tag!r} appears twice")
        seen[tag.lower()] = (tag, value)
    if "accounturi" not in seen or not seen["accounturi"][1]:
        raise MalformedRecord("no accounturi parameter")
    policy = seen.pop("policy", (None, None))[1]
    until_text = seen.pop("persistuntil", (None, None))[1]
    if until_text is not None and not _DIGITS.match(until_text):
        raise MalformedRecord(f"persistUntil={until_text!r} is not a base-10 integer")
    return PersistRecord(
        issuer_domain=issuer,
        account_uri=seen.pop("accounturi")[1],
        wildcard=(policy or "").lower() == "wildcard",
        persist_until=int(until_text) if until_text is not None else None,
        policy=policy,
        extras=tuple(seen.values()),
    )


@dataclass(frozen=True, slots=True)
class PersistSpec:
    """The record a person adds: where (``record_name``) and what (``value``)."""

    name: str
    record_name: str
    value: str
    record: PersistRecord


def build_record(
    name: str,
    *,
    issuer_domain: str,
    account: AccountBinding,
    wildcard: bool = False,
    persist_until: datetime | int | None = None,
    any_domain: bool = False,
) -> PersistSpec:
    """The record for ``name``; a wildcard name (``*.x``) always gets ``policy=wildcard`` (§5)."""
    wildcard = wildcard or name.strip().startswith("*.")
    base = normalize_domain(name.strip().removeprefix("*."))
    until = int(persist_until.timestamp()) if isinstance(persist_until, datetime) else persist_until
    if until is not None and until < 0:
        raise ValueError("persistUntil must not be before 1970")
    record = PersistRecord(
        issuer_domain=normalize_domain(issuer_domain),
        account_uri=account.record_uri(base, any_domain=any_domain),
        wildcard=wildcard,
        persist_until=until,
        policy="wildcard" if wildcard else None,
    )
    return PersistSpec(
        name=name, record_name=f"{LABEL}.{base}", value=record.to_text(), record=record
    )


def zone_file_line(spec: PersistSpec, ttl: int = 3600) -> str:
    """A zone-file line; RDATA over 255 octets is split into quoted strings (draft §9.1)."""
    data = spec.value.encode("ascii")
    chunks = [data[i : i + 255].decode("ascii") for i in range(0, len(data), 255)] or [""]
    quoted = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    return f"{spec.record_name}. {ttl} IN TXT {quoted}"


def covers(validated: str, requested: str, *, wildcard_policy: bool) -> bool:
    """Whether a record at ``validated`` can authorize ``requested`` (draft §5.1, §6.1).

    Without ``policy=wildcard`` only the FQDN itself. With it also ``*.validated`` and any
    name (or wildcard) strictly below ``validated``.
    """
    base = normalize_domain(validated.removeprefix(f"{LABEL}."))
    is_wildcard = requested.strip().startswith("*.")
    target = normalize_domain(requested.strip().removeprefix("*."))
    if not wildcard_policy:
        return not is_wildcard and target == base
    return target == base or target.endswith("." + base)


class PersistState(StrEnum):
    OK = "ok"
    EXPIRES_SOON = "expires_soon"
    MISSING = "missing"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_ACCOUNT = "wrong_account"
    NO_WILDCARD_POLICY = "no_wildcard_policy"
    EXPIRED = "expired"
    MALFORMED = "malformed"
    UNAVAILABLE = "unavailable"  # the CA advertises no issuer domain names
    UNCHECKED = "unchecked"  # no authoritative server answered


@dataclass(frozen=True, slots=True)
class PersistStatus:
    """What the records at one name mean for one account at one CA, and why."""

    state: PersistState
    detail: str
    record: PersistRecord | None = None

    @property
    def usable(self) -> bool:
        """True when the CA should accept the record today."""
        return self.state in (PersistState.OK, PersistState.EXPIRES_SOON)

    @property
    def persist_until(self) -> datetime | None:
        return self.record.expires_at if self.record else None


# Best first: when several records carry our issuer, report the one closest to working.
_RANK = {
    PersistState.OK: 0,
    PersistState.EXPIRES_SOON: 1,
    PersistState.NO_WILDCARD_POLICY: 2,
    PersistState.EXPIRED: 3,
    PersistState.WRONG_ACCOUNT: 4,
}


def evaluate(
    records: Iterable[str],
    *,
    name: str,
    issuer_domains: Collection[str],
    account: AccountBinding,
    now: datetime,
    wildcard_needed: bool = False,
    warn_days: int = DEFAULT_WARN_DAYS,
) -> PersistStatus:
    """Judge the TXT values found at ``record_name(name)`` the way the CA will (draft §4.3.2).

    Records for other issuers are ignored; among ours the best one wins. ``name`` may be a
    wildcard (``*.x``), which then needs ``policy=wildcard`` like ``wildcard_needed``. A record
    whose ``persistUntil`` is less than ``warn_days`` ahead is usable but ``expires_soon``.
    """
    values = list(records)
    wildcard_needed = wildcard_needed or name.strip().startswith("*.")
    base = normalize_domain(name.strip().removeprefix("*."))
    where = f"{LABEL}.{base}"
    ours = {normalize_domain(d) for d in issuer_domains}
    if not values:
        return PersistStatus(PersistState.MISSING, f"no TXT record at {where}")
    parsed: list[PersistRecord] = []
    problems: list[str] = []
    for value in values:
        try:
            parsed.append(parse_record(value))
        except MalformedRecord as exc:
            problems.append(f"{value!r}: {exc}")
    mine = [r for r in parsed if r.issuer_domain in ours]
    if not mine:
        if problems and not parsed:
            return PersistStatus(PersistState.MALFORMED, "; ".join(problems))
        seen = ", ".join(sorted({r.issuer_domain for r in parsed})) or "none"
        wanted = ", ".join(sorted(ours)) or "none"
        return PersistStatus(
            PersistState.WRONG_ISSUER,
            f"{where} names issuer {seen}; this CA accepts {wanted}",
        )
    accepted = account.accepted_uris(base)
    judged = [
        _judge(r, where, accepted, now, wildcard_needed, timedelta(days=warn_days)) for r in mine
    ]
    return min(judged, key=lambda s: _RANK[s.state])


def _judge(
    record: PersistRecord,
    where: str,
    accepted: frozenset[str],
    now: datetime,
    wildcard_needed: bool,
    warn: timedelta,
) -> PersistStatus:
    if record.account_uri not in accepted:
        return PersistStatus(
            PersistState.WRONG_ACCOUNT,
            f"{where} binds accounturi={record.account_uri}, not this issuer's account",
            record,
        )
    expires = record.expires_at
    left = None if record.persist_until is None else record.persist_until - now.timestamp()
    if expires is not None and left is not None and left < 0:
        return PersistStatus(
            PersistState.EXPIRED, f"{where} expired at {expires.isoformat()} (persistUntil)", record
        )
    if wildcard_needed and not record.wildcard:
        return PersistStatus(
            PersistState.NO_WILDCARD_POLICY,
            f"{where} has no policy=wildcard, which a wildcard name needs",
            record,
        )
    if expires is not None and left is not None and left < warn.total_seconds():
        return PersistStatus(
            PersistState.EXPIRES_SOON,
            f"{where} stops validating at {expires.isoformat()}: renew persistUntil",
            record,
        )
    return PersistStatus(PersistState.OK, f"{where} binds this account", record)


def _domain_list(value: Any) -> tuple[str, ...] | None:
    """A §3.1-conforming list of issuer domain names, or None."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ISSUER_DOMAINS:
        return None
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item or len(item) > 253:
            return None
        try:
            names.append(normalize_domain(item))
        except ValueError:
            return None
    return tuple(dict.fromkeys(names))


def directory_issuer_domains(meta: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The issuer domain names a directory ``meta`` offers for pre-provisioning (draft §3.2).

    Returns ``(names, accountHashPrefix or None)``. A missing or nonconforming
    ``issuerDomainNames`` gives no names: the CA does not (or not usably) offer the challenge.
    """
    names = _domain_list(meta.get("issuerDomainNames")) or ()
    prefix = meta.get("accountHashPrefix")
    return names, prefix if isinstance(prefix, str) and prefix else None


def challenge_issuer_domains(
    challenge: Mapping[str, Any], directory_names: Sequence[str] = ()
) -> tuple[str, ...]:
    """The issuer domain names of a dns-persist-01 challenge object (draft §3.1, §3.2).

    Reads ``issuerDomainNames`` (-02) or ``issuer-domain-names`` (-00/-01). Raises
    :class:`MalformedRecord` for an empty or over-long list, or when a directory name is
    missing from it, which the draft tells clients to treat as a malformed challenge.
    """
    raw = challenge.get("issuerDomainNames", challenge.get("issuer-domain-names"))
    names = _domain_list(raw)
    if names is None:
        raise MalformedRecord(f"challenge issuerDomainNames {raw!r} is not 1..10 domain names")
    absent = [d for d in directory_names if d not in names]
    if absent:
        raise MalformedRecord(f"challenge lacks the directory's issuer names {absent}")
    return names


@dataclass(frozen=True, slots=True)
class ServerTxt:
    """What one authoritative server answered: the joined TXT values, or why there are none."""

    server: str
    values: tuple[str, ...] = ()
    error: str | None = None  # NXDOMAIN, SERVFAIL, REFUSED, timeout, ...


def query_txt(fqdn: str, host: str, port: int = 53, *, timeout: float = 2.0) -> ServerTxt:
    """Ask one server directly (no recursion) for the TXT at ``fqdn``.

    Each record's strings are joined (draft §9.1). NXDOMAIN and NOERROR/NODATA both give no
    values; NXDOMAIN is named in ``error`` so a person can tell a typo from an empty answer.
    """
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        qname = dns.name.from_text(fqdn)
        query = dns.message.make_query(qname, dns.rdatatype.TXT)
        query.flags &= ~dns.flags.RD
        address = address_of(host)
        response, _ = dns.query.udp_with_fallback(query, address, timeout=timeout, port=port)
    except dns.exception.Timeout:
        return ServerTxt(label, error="timeout")
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return ServerTxt(label, error=f"{type(exc).__name__}: {exc}")
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return ServerTxt(label, error="NXDOMAIN")
    if rcode != dns.rcode.NOERROR:
        return ServerTxt(label, error=dns.rcode.to_text(rcode))
    values = tuple(
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rrset in response.answer
        if rrset.name == qname and rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    )
    return ServerTxt(label, values=values)


@dataclass(frozen=True, slots=True)
class PersistCheck:
    """The record of one name as each authoritative server serves it, and the verdict.

    ``status`` is the worst verdict among the servers that answered, since the CA may ask any
    of them; ``UNCHECKED`` when none answered. ``servers`` pairs each answer with its verdict
    (``None`` for a server that did not answer).
    """

    name: str
    record_name: str
    status: PersistStatus
    servers: tuple[tuple[ServerTxt, PersistStatus | None], ...]


# Worst last: the overall verdict of several servers is the worst one.
_SEVERITY = [
    PersistState.OK,
    PersistState.EXPIRES_SOON,
    PersistState.NO_WILDCARD_POLICY,
    PersistState.EXPIRED,
    PersistState.WRONG_ACCOUNT,
    PersistState.WRONG_ISSUER,
    PersistState.MALFORMED,
    PersistState.MISSING,
]


def check_authoritative(
    name: str,
    nameservers: Sequence[tuple[str, int]],
    *,
    issuer_domains: Collection[str],
    account: AccountBinding,
    now: datetime,
    wildcard_needed: bool = False,
    warn_days: int = DEFAULT_WARN_DAYS,
    timeout: float = 2.0,
    query: Callable[..., ServerTxt] = query_txt,
) -> PersistCheck:
    """Read ``_validation-persist.<name>`` on every server and judge it (draft §9.4, §7.11).

    The record is read where the CA reads it, not from a cache: each server is asked directly.
    """
    where = record_name(name)
    results: list[tuple[ServerTxt, PersistStatus | None]] = []
    for host, port in dict.fromkeys(nameservers):
        answer = query(where, host, port, timeout=timeout)
        verdict = None
        if answer.error in (None, "NXDOMAIN"):
            verdict = evaluate(
                answer.values,
                name=name,
                issuer_domains=issuer_domains,
                account=account,
                now=now,
                wildcard_needed=wildcard_needed,
                warn_days=warn_days,
            )
        results.append((answer, verdict))
    answered = [(a, v) for a, v in results if v is not None]
    silent = [f"{a.server} ({a.error})" for a, v in results if v is None]
    if not answered:
        reason = ", ".join(silent) if silent else "no authoritative servers are known"
        status = PersistStatus(PersistState.UNCHECKED, f"could not read {where}: {reason}")
        return PersistCheck(name, where, status, tuple(results))
    worst = max((v for _, v in answered), key=lambda v: _SEVERITY.index(v.state))
    notes = []
    if len({v.state for _, v in answered}) > 1:
        seen = ", ".join(f"{a.server}: {v.state}" for a, v in answered)
        notes.append(f"servers disagree ({seen})")
    if silent:
        notes.append("no answer from " + ", ".join(silent))
    if notes:
        worst = PersistStatus(worst.state, f"{worst.detail}; {'; '.join(notes)}", worst.record)
    return PersistCheck(name, where, worst, tuple(results))
