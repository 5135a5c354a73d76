"""Commands: the multi-transaction sequences of the adapters, each written once.

Some requests cannot be one unit of work. Revoking a certificate or adding (or editing)
an issuer or a DNS zone talks to the CA or the DNS provider, and no transaction may stay
open while it does: the command checks and reads in transaction 1, commits, makes the slow
call with no transaction open, records the outcome and its audit event in transaction 2
and commits. Confirming manual
DNS, asking for a CA check and deciding an approval request wake a waiting DBOS workflow,
which reads what the request wrote: the command commits first, then sends the message.
The JSON API and the web UI used to spell these sequences out each; now both call one
function here, so they cannot drift apart.

Why here, in ``workflows/``: these functions sit between the adapters (``api/``, ``web/``,
``cli/``) and the domain services, and some of them signal DBOS workflows through the
launcher; the import-linter layers contract already puts ``certautopilot.workflows`` at
exactly that level, so no new layer (and no edit of the contract) is needed. The domain
services keep the rules and never commit; a command only orders them and owns the commits.

A command is given the request's own session rather than a session factory: the caller's
membership (its ``Actor``) was read in that session, and the returned rows stay attached
to it for the response; a second session would hold a second connection while the
request's first one still had its read transaction open. Its first transaction is the one
the request began with authentication. A command leaves the session clean: committed
when it returns, rolled back when it raises (so a view may render an error page with the
same session). Run it from a plain ``def`` route (FastAPI's threadpool), never on the
event loop: it does blocking I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certautopilot.approvals import service as approvals
from certautopilot.approvals.models import ApprovalRequest
from certautopilot.auth.service import Actor, require
from certautopilot.certificates import idempotency, lifecycle
from certautopilot.certificates import service as certs
from certautopilot.certificates.idempotency import Answer
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.schemas import CertificateIn
from certautopilot.clock import utcnow
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.dns import service as zones
from certautopilot.dns.models import DnsZone
from certautopilot.dns.schemas import ZoneIn, ZonePatch
from certautopilot.errors import CertAutoPilotError
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.issuers.schemas import IssuerIn, IssuerPatch, IssuerTestOut, IssuerTestStep
from certautopilot.renewal.budget import Limits
from certautopilot.workflows.launcher import DbosLauncher

log = logging.getLogger(__name__)


@contextmanager
def _clean_on_error(session: Session) -> Iterator[None]:
    """Rolls back whatever the failed step left open, then lets the error through."""
    try:
        yield
    except BaseException:
        session.rollback()
        raise


# -- once per Idempotency-Key ----------------------------------------------------------
def request_certificate(
    session: Session,
    launcher: DbosLauncher,
    *,
    project_id: str,
    body: CertificateIn,
    actor: Actor,
    idempotency_key: str | None,
    key_ttl: timedelta,
    now: datetime,
    base_url: str,
    limits: Limits,
) -> Answer:
    """Requests a certificate; with an ``Idempotency-Key``, once per key (see
    ``certificates.idempotency``): a key seen before answers its first answer, and of
    concurrent requests with one key the losers roll back and answer the winner's."""
    key = idempotency.check_key(idempotency_key)
    digest = idempotency.fingerprint(body) if key is not None else ""
    where = {"project_id": project_id, "user_id": actor.user_id}
    with _clean_on_error(session):
        if key is not None:
            stored = idempotency.find(session, key=key, now=now, **where)
            if stored is not None:
                answer = idempotency.replay(stored, digest)
                session.commit()
                return answer
        cert = certs.create_certificate(
            session,
            project_id=project_id,
            body=body,
            actor=actor,
            launcher=launcher,
            now=now,
            base_url=base_url,
            limits=limits,
        )
        session.flush()
        answer = Answer(202, certs.to_out(session, cert).model_dump(mode="json"))
        try:
            if key is not None:
                idempotency.remember(
                    session, key=key, digest=digest, answer=answer, now=now, ttl=key_ttl, **where
                )
            session.commit()
        except IntegrityError:
            session.rollback()  # a concurrent request with this key won: answer its answer
            stored = idempotency.find(session, key=key, now=now, **where) if key else None
            if stored is None:
                raise
            answer = idempotency.replay(stored, digest)
            session.commit()
            log.info("a concurrent request with the same Idempotency-Key won: its answer sent")
    return answer


# -- transaction, CA call, transaction ---------------------------------------------------
@dataclass(frozen=True)
class Revoked:
    """What a revocation did: the certificate, the versions revoked (current first), and
    the earlier versions that stay valid (when every version was not asked for)."""

    certificate: Certificate
    revoked: list[lifecycle.Revocation]
    still_valid: list[CertificateVersion]


def revoke_certificate(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    cert_id: str,
    reason: str,
    actor: Actor,
    record_only: bool = False,
    all_versions: bool = False,
) -> Revoked:
    """Checks the revocation, claims each version (409 when another request holds one),
    tells the CA (unless ``record_only``), records and audits each. With ``all_versions``,
    every earlier version still valid is revoked too.

    A CA refusal lets go of the claims not yet used; versions the CA revoked before it are
    recorded all the same (nothing the CA did is lost), and the error says which."""
    now = utcnow()
    with _clean_on_error(session):
        cert = certs.get_certificate(session, project_id=project_id, cert_id=cert_id)
        prepared = lifecycle.prepare_revocations(
            session,
            kek,
            cert=cert,
            reason=reason,
            actor=actor,
            now=now,
            record_only=record_only,
            all_versions=all_versions,
        )
        # One request at a time tells the CA: the others get 409 here.
        claimed = [lifecycle.claim_revocation(session, r, now=now) for r in prepared]
        session.commit()  # no transaction stays open while the CA is called
        done: list[lifecycle.Revocation] = []
        try:
            for revocation in claimed:
                revocation.send_to_ca()
                done.append(revocation)
        except BaseException as exc:
            session.rollback()
            for revocation in claimed[len(done) :]:
                lifecycle.release_revocation(session, revocation)
            for revocation in done:
                cert = lifecycle.record_revocation(session, revocation, actor=actor)
            answer: BaseException = exc
            if isinstance(exc, CertAutoPilotError) and len(done) < len(claimed):
                refused = claimed[len(done)]
                answer = lifecycle.refused_revocation(session, refused, exc, actor=actor)
            session.commit()
            if done and isinstance(answer, CertAutoPilotError):
                names = ", ".join(f"version {r.seq}" for r in done)
                answer.detail = f"{answer.detail} (revoked before the refusal: {names})"
            if answer is exc:
                raise
            raise answer from exc
        for revocation in done:
            cert = lifecycle.record_revocation(session, revocation, actor=actor)
        left = (
            [] if all_versions else lifecycle.still_valid_earlier_versions(session, cert, now=now)
        )
        session.commit()
    return Revoked(cert, done, left)


def create_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    body: IssuerIn,
    actor: Actor,
) -> Issuer:
    """Registers the ACME account (or checks the AD CS server), then stores the issuer."""
    with _clean_on_error(session):
        session.commit()  # end the request's read transaction: the check talks to the CA
        check = issuers.check_new_issuer(body, actor=actor)
        issuer = issuers.create_issuer(
            session, kek, project_id=project_id, body=body, check=check, actor=actor
        )
        session.commit()
    return issuer


def create_zone(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, body: ZoneIn, actor: Actor
) -> DnsZone:
    """Validates the zone, checks it at its provider (authenticate and list, no transaction
    open), then stores it."""
    with _clean_on_error(session):
        plan = zones.plan_new_zone(session, project_id=project_id, body=body)
        session.commit()  # end the read transaction: the check talks to the provider
        zones.check_zone(plan)
        zone = zones.create_zone(session, kek, project_id=project_id, plan=plan, actor=actor)
        session.commit()
    return zone


def update_zone(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    zone_id: str,
    patch: ZonePatch,
    actor: Actor,
) -> DnsZone:
    """Applies ``patch``, checks the result at the provider, and only then stores it. A
    patch of ``enabled`` alone is stored at once (nothing for the provider to check); with
    other fields it is stored with the checked settings, or not at all."""
    where = {"project_id": project_id, "zone_id": zone_id}
    if not patch.changes_settings():
        with _clean_on_error(session):
            zone = zones.get_zone(session, **where)
            if patch.enabled is not None:
                zone = zones.set_enabled(session, enabled=patch.enabled, actor=actor, **where)
            session.commit()
        return zone
    with _clean_on_error(session):
        plan = zones.plan_edit(session, kek, patch=patch, **where)
        session.commit()  # end the read transaction: the check talks to the provider
        zones.check_zone(plan)
        zone = zones.update_zone(session, kek, plan=plan, actor=actor, **where)
        if patch.enabled is not None:
            zones.set_enabled(session, enabled=patch.enabled, actor=actor, **where)
        session.commit()
    return zone


def update_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    issuer_id: str,
    patch: IssuerPatch,
    actor: Actor,
) -> Issuer:
    """Applies ``patch``, checks the result at the CA, and only then stores it (an ACME
    issuer's limits and CAA identity need no check: stored at once)."""
    where = {"project_id": project_id, "issuer_id": issuer_id}
    if patch.acme is not None or patch.adcs is None:
        with _clean_on_error(session):
            if patch.acme is not None:
                issuer = issuers.update_acme_issuer(session, patch=patch.acme, actor=actor, **where)
            if patch.enabled is not None:
                issuer = issuers.set_enabled(session, enabled=patch.enabled, actor=actor, **where)
            session.commit()
        return issuer
    with _clean_on_error(session):
        if patch.enabled is not None:  # stored with the checked settings, or not at all
            issuers.set_enabled(session, enabled=patch.enabled, actor=actor, **where)
        settings = issuers.edited_settings(session, kek, patch=patch, actor=actor, **where)
        session.commit()  # no transaction stays open while the CA is called
        verified = issuers.check_edited_issuer(settings, issuer_id=issuer_id)
        issuer = issuers.update_issuer(
            session,
            kek,
            patch=patch,
            settings=settings,
            verified=verified,
            actor=actor,
            **where,
        )
        session.commit()
    return issuer


def delete_issuer(session: Session, *, project_id: str, issuer_id: str, actor: Actor) -> None:
    with _clean_on_error(session):
        issuers.delete_issuer(session, project_id=project_id, issuer_id=issuer_id, actor=actor)
        session.commit()


def test_issuer(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, issuer_id: str, actor: Actor
) -> IssuerTestOut:
    """The Test button: connects with the stored settings, ends the transaction, then
    reaches the CA step by step (orders nothing, writes nothing)."""
    with _clean_on_error(session):
        require(actor, "admin", "Testing an issuer")
        issuer = issuers.get_issuer(session, project_id=project_id, issuer_id=issuer_id)
        authority = issuers.connect(session, kek, issuer)
        session.commit()  # no transaction stays open while the CA is called
    steps = authority.check()
    return IssuerTestOut(
        ok=bool(steps) and all(s.ok for s in steps),
        steps=[IssuerTestStep(step=s.step, ok=s.ok, detail=s.detail) for s in steps],
    )


# -- commit, then wake the workflow ------------------------------------------------------
def confirm_dns(
    session: Session, launcher: DbosLauncher, *, project_id: str, cert_id: str, actor: Actor
) -> Certificate:
    """An operator says the manual DNS records are in place: audit, then resume the job."""
    with _clean_on_error(session):
        cert = certs.get_certificate(session, project_id=project_id, cert_id=cert_id)
        version = certs.request_dns_confirmation(session, cert=cert, actor=actor)
        session.commit()
    launcher.confirm_dns(version.id, actor.email)  # the workflow reads what was committed
    return cert


def check_ca(
    session: Session, launcher: DbosLauncher, *, project_id: str, cert_id: str, actor: Actor
) -> Certificate:
    """AD CS: ask the waiting workflow to check the CA now (e.g. right after approval)."""
    with _clean_on_error(session):
        cert = certs.get_certificate(session, project_id=project_id, cert_id=cert_id)
        version = certs.request_ca_check(session, cert=cert, actor=actor)
        session.commit()
    launcher.check_ca(version.id, actor.email)
    return cert


def decide_request(
    session: Session,
    launcher: DbosLauncher,
    *,
    project_id: str,
    request_id: str,
    approve: bool,
    comment: str,
    actor: Actor,
    base_url: str,
    now: datetime,
) -> ApprovalRequest:
    """Approves or rejects a request, then wakes the issuance waiting for the decision."""
    with _clean_on_error(session):
        row = approvals.get_request(session, project_id=project_id, request_id=request_id)
        approvals.decide(
            session,
            launcher=launcher,
            base_url=base_url,
            row=row,
            actor=actor,
            approve=approve,
            comment=comment,
            now=now,
        )
        session.commit()
    launcher.decided(row.version_id, row.status)
    return row
