"""Issuer fallback: when a certificate's issuer cannot issue, the next allowed one does.

A certificate names an ordered list of fallback issuers (``fallback_issuer_ids``), or,
naming none, follows its project policy's ``fallback_issuers``. When its issuer cannot
issue - unreachable after the step's retries, a 429 whose ``Retry-After`` is longer than a
step waits, out of its rate-limit budget, or forbidden by the names' CAA records - the
next one in the list that is allowed (the policy's issuer rules, its own budget, the CAA
records) is used, and ``cert.issuer_fallback`` on the timeline says why, from which
issuer to which.

Design: a fallback *switches the version's issuer before ordering*
(``CertificateVersion.issuer_id``); it does not create a new version on the other issuer.

- One version, one order URL: it happens only while the version has no order URL, that
  is when the first issuer failed at or before newOrder. Once an order exists its
  failure fails the version as before: the order belongs to the CA holding it.
- Crash-safe: the switch is one step (:func:`fall_back`) that checks, then writes, in one
  transaction, and is keyed by how many fallbacks this run made (``hop``), counted from
  the version's own ``cert.issuer_fallback`` events: a step run again after a crash
  returns the switch it made instead of skipping an issuer. ``acme_steps.begin`` is
  idempotent as before and orders from whichever issuer the version names.
- The certificate's issuer never changes: a renewal is a new version naming no issuer of
  its own, so it tries the first issuer again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from dbos import error as dbos_error
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from certautopilot.audit.events import EventType
from certautopilot.audit.models import AuditEvent
from certautopilot.certificates import caa_check, fallbacks
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import VersionStatus
from certautopilot.clock import utcnow
from certautopilot.dns.models import DnsZone
from certautopilot.errors import CaaForbidden, RateLimited, TransientIssuerError
from certautopilot.issuers.models import Issuer
from certautopilot.renewal import orders
from certautopilot.renewal.models import OrderLog
from certautopilot.workflows.records import load, record_event, tx
from certautopilot.workflows.retries import db_step
from certautopilot.workflows.runtime import runtime

RETRY_AFTER_CAP = 30.0  # as ``acme_steps``: a longer Retry-After is not waited for in a step


class Reason(enum.StrEnum):
    """Why the issuer could not issue (the event's ``reason``)."""

    UNREACHABLE = "unreachable"
    RATE_LIMITED = "rate_limited"
    BUDGET = "budget"
    CAA = "caa"


def reason_of(exc: BaseException) -> tuple[Reason, str] | None:
    """The fallback reason behind a failed ``begin``, or None: not a reason to switch
    (a refused name, a DNS problem, ...: another CA would not do better)."""
    if isinstance(exc, dbos_error.DBOSMaxStepRetriesExceeded) and exc.errors:
        last = exc.errors[-1]
        if isinstance(last, TransientIssuerError):
            return Reason.UNREACHABLE, f"{last} (after {exc.max_retries} attempts)"
        return None
    if isinstance(exc, CaaForbidden):
        return Reason.CAA, str(exc)
    if isinstance(exc, RateLimited):
        return Reason.BUDGET, str(exc)
    if isinstance(exc, TransientIssuerError):
        if exc.retry_after is not None and exc.retry_after > RETRY_AFTER_CAP:
            return Reason.RATE_LIMITED, f"{exc} (Retry-After {exc.retry_after:.0f} s)"
        return Reason.UNREACHABLE, str(exc)
    return None


def why_not(session: Session, cert: Certificate, issuer: Issuer) -> str | None:
    """Why ``issuer`` may not be a fallback for ``cert`` now (None: it may), without DNS."""
    refused = fallbacks.allowed_now(session, cert, issuer)
    if refused is not None:
        return refused
    found = orders.verdict(
        session,
        issuer=issuer,
        names=cert.names,
        now=utcnow(),
        limits=runtime().settings.rate_limits,
        share=1.0,
    )
    if not found.allowed:
        return f"out of its rate-limit budget: {found.reason}"
    return None


def caa_refusal(issuer: Issuer, names: list[str], zones: list[DnsZone]) -> str | None:
    """What the names' CAA records say against ``issuer`` (None: allowed, or unreadable:
    the CA reads them itself). DNS lookups: call outside a transaction."""
    refused = [c for c in caa_check.check_names(issuer, names, zones) if c.allowed is False]
    return "; ".join(f"{c.name}: {c.detail}" for c in refused) or None


@dataclass(frozen=True)
class _Candidate:
    issuer_id: str
    name: str
    refusal: str | None


def _made(session: Session, cert: Certificate, version: CertificateVersion) -> list[str]:
    """The issuers this version already fell back to, in order (its events say)."""
    rows = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.subject_type == "certificate",
            AuditEvent.subject_id == cert.id,
            AuditEvent.type == EventType.CERT_ISSUER_FALLBACK.value,
        )
        .order_by(AuditEvent.id)
    )
    return [
        str(e.detail["to"])
        for e in rows
        # a request's own switch (budget, ``at_request``) is not one of this run's hops
        if e.detail.get("version_id") == version.id
        and e.detail.get("to")
        and not e.detail.get("at_request")
    ]


def _move_count(
    session: Session, cert: Certificate, version: CertificateVersion, issuer_id: str
) -> None:
    """The order the request counted for the first issuer is counted for the new one."""
    had = session.scalar(select(OrderLog.at).where(OrderLog.version_id == version.id).limit(1))
    session.execute(delete(OrderLog).where(OrderLog.version_id == version.id))
    issuer = session.get(Issuer, issuer_id)
    if had is not None and issuer is not None:
        orders.record_order(
            session,
            issuer=issuer,
            certificate_id=cert.id,
            names=cert.names,
            version_id=version.id,
            at=had,
        )


@db_step("cert.issuer_fallback")
def fall_back(version_id: str, hop: int, reason: str, detail: str) -> str | None:
    """Switches the version to the next allowed issuer; its id, or None when there is none
    (or an order exists already): the caller then fails the version as before."""
    with tx() as session:
        version, cert = load(session, version_id)
        made = _made(session, cert, version)
        if len(made) > hop:  # this step ran before (a crash before DBOS recorded it)
            return made[hop]
        if version.order_url is not None or version.status != VersionStatus.PENDING:
            return None
        chain = fallbacks.chain_ids(session, cert)
        current = version.issuer_id or cert.issuer_id
        later = chain[chain.index(current) + 1 :] if current in chain else []
        candidates = []
        for issuer_id in later:
            issuer = session.get(Issuer, issuer_id)
            assert issuer is not None
            candidates.append(_Candidate(issuer.id, issuer.name, why_not(session, cert, issuer)))
        zones = list(session.scalars(select(DnsZone).where(DnsZone.project_id == cert.project_id)))
        names = list(cert.names)
    skipped: list[dict[str, str]] = []
    chosen: _Candidate | None = None
    for c in candidates:
        refusal = c.refusal
        if refusal is None:
            with tx() as session:
                issuer = session.get(Issuer, c.issuer_id)
                assert issuer is not None
                session.expunge(issuer)
            refusal = caa_refusal(issuer, names, zones)
        if refusal is None:
            chosen = c
            break
        skipped.append({"issuer": c.name, "why": refusal})
    with tx() as session:
        version, cert = load(session, version_id)
        if version.order_url is not None:
            return None
        source = session.get(Issuer, version.issuer_id or cert.issuer_id)
        event: dict[str, Any] = {
            "version": version.seq,
            "version_id": version.id,
            "reason": reason,
            "detail": detail,
            "from": source.id if source else None,
            "from_issuer": source.name if source else None,
        }
        if chosen is None:
            if skipped:  # the timeline says why no fallback was used (``to`` None)
                event.update(to=None, to_issuer=None, skipped=skipped)
                record_event(session, cert, EventType.CERT_ISSUER_FALLBACK, event)
            return None
        version.issuer_id = chosen.issuer_id
        _move_count(session, cert, version, chosen.issuer_id)
        event.update(to=chosen.issuer_id, to_issuer=chosen.name)
        if skipped:
            event["skipped"] = skipped
        record_event(session, cert, EventType.CERT_ISSUER_FALLBACK, event)
    return chosen.issuer_id
