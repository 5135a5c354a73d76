"""A certificate's timeline for people: each audit event in plain words with its details,
grouped per version (a request or renewal up to its outcome) with how long it took, and the
machine's step rows (keys, orders, records, checks) folded under the milestones.

The API's timeline (``GET .../timeline``) keeps the raw events; this is only how the web
page words and arranges them. Unknown types read as their name in words, so a new event
type shows up before anyone words it here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from certautopilot.audit.models import AuditEvent

#: Events that start a new group: a version's request or renewal.
STARTS = {"cert.requested", "cert.renewal_requested", "cert.renewal_started"}
#: Events a person cares about; every other event is a step, folded.
MILESTONES = STARTS | {
    "cert.issued",
    "cert.renewed",
    "cert.failed",
    "cert.revoked",
    "cert.distributed",
    "cert.distribution_failed",
    "cert.deploy_requested",
    "cert.deploy_dry_run",
    "policy.overridden",
    "cert.expiry_warning",
    "cert.auto_renew_enabled",
    "cert.targets_changed",
    "renewal.failed",
    "renewal.deferred",
    "request.created",
    "request.approved",
    "request.rejected",
    "request.expired",
    "dns.manual.requested",
    "dns.manual.confirm_requested",
    "dns.manual.not_visible",
    "dns.manual.confirmed",
    "dns.record.refused",
    "dns.server.unavailable",
    "adcs.request.pending",
    "adcs.request.denied",
    "adcs.request.issued",
    "key.exported",
}
REASONS = {
    "unspecified": "no particular reason",
    "keyCompromise": "key compromise",
    "superseded": "superseded",
    "cessationOfOperation": "no longer used",
    "affiliationChanged": "affiliation changed",
}


def _day(value: Any) -> str:
    text = str(value or "")
    return text[:16].replace("T", " ") + " UTC" if len(text) >= 16 else text


def _names(d: dict[str, Any]) -> str:
    names = list(d.get("names") or [])
    shown = ", ".join(str(n) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _validated(d: dict[str, Any]) -> str:
    """Names the CA validated now, and those it had validated before (no record needed)."""
    reused = _names({"names": d.get("reused")})
    if not d.get("names") and reused:
        return f"The CA already held a valid authorization for {reused}: nothing to publish"
    text = f"The CA validated {_names(d)}"
    return text + (f"; it already held a valid authorization for {reused}" if reused else "")


def _checked(d: dict[str, Any]) -> str:
    servers = [s for r in d.get("records", []) for s in r.get("servers", [])]
    answers = "; ".join(str(s.get("summary") or s.get("server")) for s in servers[:6])
    verdict = "every server serves the record" if d.get("ok") else "not every server serves it yet"
    return f"Checked DNS: {verdict}" + (f" ({answers})" if answers else "")


def _failed(d: dict[str, Any]) -> str:
    title, detail = d.get("title") or "Failed", d.get("detail") or d.get("message") or ""
    return f"{title}: {detail}" if detail else str(title)


def _published(d: dict[str, Any]) -> str:
    via = f" (delegated from {d['delegated_from']})" if d.get("delegated_from") else ""
    return f"Published TXT {d.get('name', '')} in zone {d.get('zone', '')}{via}"


def _revoked(d: dict[str, Any], actor: str) -> str:
    reason = REASONS.get(str(d.get("reason")), str(d.get("reason") or ""))
    version, serial = d.get("version", "?"), d.get("serial", "")
    return f"Revoked by {actor} ({reason}): version {version}, serial {serial}"


Wording = Callable[[dict[str, Any], str], str]
WORDS: dict[str, Wording] = {
    "cert.requested": lambda d, a: (
        f"Requested by {a}: {_names(d)}"
        + (f", {d['key_type']}" if d.get("key_type") else "")
        + (f", issuer {d['issuer']}" if d.get("issuer") else "")
        + (" (own CSR)" if d.get("csr_provided") else "")
    ),
    "cert.renewal_requested": lambda d, a: f"Renewal asked for by {a}",
    "cert.renewal_started": lambda d, a: "Renewal started (its time had come)",
    "cert.issued": lambda d, a: (
        f"Issued version {d.get('version', '?')}: serial "
        f"{d.get('serial', '')}, valid until {_day(d.get('not_after'))}"
    ),
    "cert.renewed": lambda d, a: (
        f"Renewed: version {d.get('version', '?')}, serial "
        f"{d.get('serial', '')}, valid until {_day(d.get('not_after'))}"
    ),
    "cert.failed": lambda d, a: _failed(d),
    "cert.issuer_fallback": lambda d, a: (
        f"Issuer {d.get('from_issuer', '?')} could not issue ({d.get('detail', '')}); "
        + (
            f"ordering from the fallback issuer {d['to_issuer']}"
            if d.get("to_issuer")
            else "no fallback issuer may issue: "
            + "; ".join(f"{s.get('issuer')}: {s.get('why')}" for s in d.get("skipped", []))
        )
    ),
    "renewal.failed": lambda d, a: "Renewal failed: " + _failed(d),
    "cert.revoked": _revoked,
    "key.generated": lambda d, a: f"Generated a {d.get('key_type', '')} key",
    "key.exported": lambda d, a: f"Private key downloaded by {a}",
    "acme.order.created": lambda d, a: "Opened an order at the CA",
    "acme.authorizations.valid": lambda d, a: _validated(d),
    "dns.record.published": lambda d, a: _published(d),
    "cert.targets_changed": lambda d, a: (
        (f"Target {d['detached']} detached by {a}" if d.get("detached") else f"Targets set by {a}")
        + (f": now {', '.join(d['targets'])}" if d.get("targets") else ": no targets left")
    ),
    "distribution.skipped": lambda d, a: (
        f"Not deployed to {', '.join(d['targets'])}: {d.get('reason', 'skipped')}"
        if d.get("targets")
        else f"Not distributed: {d.get('reason', 'skipped')}"
    ),
    "dns.record.removed": lambda d, a: f"Removed TXT {d.get('name', '')}",
    "dns.propagation.checked": lambda d, a: _checked(d),
    "dns.propagation.confirmed": lambda d, a: "Every nameserver serves the record",
    "dns.manual.requested": lambda d, a: "Waiting for someone to publish the TXT record by hand",
    "dns.manual.confirm_requested": lambda d, a: f"{a} said the record is published",
    "dns.manual.not_visible": lambda d, a: (
        "Not visible yet" + (f": {d['message']}" if d.get("message") else "")
    ),
    "dns.manual.confirmed": lambda d, a: "The published record was found",
    "renewal.scheduled": lambda d, a: f"Next renewal planned for {_day(d.get('next_at'))}",
    "renewal.deferred": lambda d, a: (
        f"Renewal put off until {_day(d.get('next_at'))}"
        + (f": {d['reason']}" if d.get("reason") else "")
    ),
    "request.created": lambda d, a: f"Approval requested by {a}",
    "request.approved": lambda d, a: (
        f"Approved by {a}" + (f": “{d['comment']}”" if d.get("comment") else "")
    ),
    "request.rejected": lambda d, a: (
        f"Rejected by {a}" + (f": “{d['comment']}”" if d.get("comment") else "")
    ),
    "request.expired": lambda d, a: "The approval request expired",
}


def words(type_: str, detail: dict[str, Any], actor: str) -> str:
    """One event in plain words."""
    wording = WORDS.get(type_)
    if wording is not None:
        return wording(detail, actor)
    text = type_.replace(".", " ").replace("_", " ").capitalize()
    said = next(
        (detail[k] for k in ("message", "reason", "comment", "target") if detail.get(k)), ""
    )
    return text + (f" by {actor}" if actor != "system" else "") + (f": {said}" if said else "")


@dataclass
class Row:
    id: int
    at: datetime
    actor: str
    type: str
    text: str
    step: bool
    version: int | None = None  # the version a cert.issued / cert.renewed made


@dataclass
class Group:
    """A request or renewal and what followed it, up to the next one (oldest first)."""

    rows: list[Row] = field(default_factory=list)

    @property
    def key(self) -> str:  # changes when a row is added: the live page replaces the group
        return f"{self.rows[0].id}-{self.rows[-1].id}-{len(self.rows)}"

    @property
    def milestones(self) -> list[Row]:
        return [r for r in self.rows if not r.step]

    @property
    def steps(self) -> list[Row]:
        return [r for r in self.rows if r.step]

    @property
    def title(self) -> str:
        for r in reversed(self.rows):
            if r.version is not None:
                return f"Version {r.version}"
        first = self.rows[0].type
        return {
            "cert.requested": "First issuance",
            "cert.renewal_requested": "Renewal",
            "cert.renewal_started": "Renewal",
        }.get(first, "Earlier events")

    @property
    def took(self) -> str:
        seconds = int((self.rows[-1].at - self.rows[0].at).total_seconds())
        if seconds < 60:
            return f"{seconds} s"
        if seconds < 3600:
            return f"{seconds // 60} min {seconds % 60} s"
        if seconds < 86400:
            return f"{seconds // 3600} h {seconds % 3600 // 60} min"
        return f"{seconds // 86400} days"


def groups(events: Sequence[AuditEvent]) -> list[Group]:
    """``events`` (newest first, as the page reads them) grouped, newest group first."""
    out: list[Group] = []
    for e in sorted(events, key=lambda e: e.id):
        detail = e.detail if isinstance(e.detail, dict) else {}
        version = detail.get("version") if e.type in ("cert.issued", "cert.renewed") else None
        row = Row(
            e.id,
            e.at,
            e.actor,
            e.type,
            words(e.type, detail, e.actor),
            e.type not in MILESTONES,
            version if isinstance(version, int) else None,
        )
        if not out or e.type in STARTS:
            out.append(Group())
        out[-1].rows.append(row)
    return list(reversed(out))
