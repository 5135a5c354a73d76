"""A request's fallback issuers, checked before anything is stored.

``fallback_issuers`` on the request (or, when it names none, the project policy's) are
issuers of the project, in order, each validating with DNS-01 and passing the policy's
issuer rules; the request is refused (422 on ``fallback_issuers``) otherwise, so a
fallback that policy forbids is never used. ``workflows.fallback`` uses them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.certificates.models import Certificate
from certautopilot.errors import InvalidInput
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer, IssuerStatus
from certautopilot.policy import service as policy
from certautopilot.policy.schemas import PolicyRules

FIELD = "fallback_issuers"


def find(session: Session, project_id: str, ref: str) -> Issuer | None:
    """An issuer of the project by id or name."""
    issuer = session.get(Issuer, ref)
    if issuer is not None and issuer.project_id == project_id:
        return issuer
    return session.scalar(select(Issuer).where(Issuer.project_id == project_id, Issuer.name == ref))


def resolve(
    session: Session,
    *,
    project_id: str,
    primary: Issuer,
    refs: list[str] | None,
    rules: PolicyRules,
) -> list[Issuer]:
    """The fallback issuers of a request (``refs``; None: the policy's), checked."""
    from_policy = refs is None
    wanted = (rules.fallback_issuers or []) if refs is None else refs
    found: list[Issuer] = []
    for ref in wanted:
        issuer = find(session, project_id, ref)
        where = " (project policy's fallback_issuers)" if from_policy else ""
        if issuer is None:
            raise InvalidInput.field(FIELD, f"no issuer {ref!r} in this project{where}")
        if issuer.id == primary.id:
            if from_policy:  # the policy lists the chosen issuer too: nothing to fall back to
                continue
            raise InvalidInput.field(FIELD, f"{issuer.name!r} is the certificate's own issuer")
        if issuer.status == IssuerStatus.DISABLED:
            if from_policy:  # a disabled issuer is no fallback; the policy's list stays
                continue
            issuers.require_enabled(issuer, field=FIELD)
        if any(i.id == issuer.id for i in found):
            raise InvalidInput.field(FIELD, f"{issuer.name!r} is listed twice")
        if not issuers.has(issuer, issuer_port.DNS01):
            raise InvalidInput.field(
                FIELD, f"{issuer.name!r}: only issuers that validate with DNS-01 can be fallbacks"
            )
        if not issuers.has(primary, issuer_port.DNS01):
            raise InvalidInput.field(
                FIELD, "only a certificate whose issuer validates with DNS-01 can fall back"
            )
        refused = policy.issuer_warnings(rules, issuer, FIELD)
        if refused:
            raise InvalidInput.field(FIELD, refused[0].message + where)
        found.append(issuer)
    return found


def chain_ids(session: Session, cert: Certificate) -> list[str]:
    """The certificate's issuer, then its fallback issuers (its own, else the policy's),
    as they stand now: one deleted since is left out."""
    wanted = cert.fallback_issuer_ids
    if wanted is None:
        wanted = policy.rules_of(session, cert.project_id).fallback_issuers or []
    ids = [cert.issuer_id]
    for ref in wanted:
        issuer = find(session, cert.project_id, ref)
        if issuer is not None and issuer.id not in ids:
            ids.append(issuer.id)
    return ids


def allowed_now(session: Session, cert: Certificate, issuer: Issuer) -> str | None:
    """Why ``issuer`` may not be a fallback of ``cert`` now (None: it may): the policy's
    issuer rules as they stand (budget and CAA are the caller's)."""
    if issuer.status == IssuerStatus.DISABLED:
        return "disabled"
    if not issuers.has(issuer, issuer_port.DNS01):
        return "only issuers that validate with DNS-01 can be fallbacks"
    refused = policy.issuer_warnings(policy.rules_of(session, cert.project_id), issuer)
    return refused[0].message if refused else None
