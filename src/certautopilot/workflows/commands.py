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

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session

from certautopilot.approvals import service as approvals
from certautopilot.approvals.models import ApprovalRequest
from certautopilot.auth.service import Actor
from certautopilot.certificates import lifecycle
from certautopilot.certificates import service as certs
from certautopilot.certificates.models import Certificate
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.dns import service as zones
from certautopilot.dns.models import DnsZone
from certautopilot.dns.schemas import ZoneIn, ZonePatch
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.issuers.schemas import IssuerIn, IssuerPatch
from certautopilot.workflows.launcher import DbosLauncher


@contextmanager
def _clean_on_error(session: Session) -> Iterator[None]:
    """Rolls back whatever the failed step left open, then lets the error through."""
    try:
        yield
    except BaseException:
        session.rollback()
        raise


# -- transaction, CA call, transaction ---------------------------------------------------
def revoke_certificate(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    cert_id: str,
    reason: str,
    actor: Actor,
    record_only: bool = False,
) -> Certificate:
    """Checks the revocation, tells the CA (unless ``record_only``), records and audits it."""
    with _clean_on_error(session):
        cert = certs.get_certificate(session, project_id=project_id, cert_id=cert_id)
        revocation = lifecycle.prepare_revocation(
            session, kek, cert=cert, reason=reason, actor=actor, record_only=record_only
        )
        session.commit()  # no transaction stays open while the CA is called
        revocation.send_to_ca()
        cert = lifecycle.record_revocation(session, revocation, actor=actor)
        session.commit()
    return cert


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
    """Applies ``patch``, checks the result at the provider, and only then stores it."""
    where = {"project_id": project_id, "zone_id": zone_id}
    with _clean_on_error(session):
        plan = zones.plan_edit(session, kek, patch=patch, **where)
        session.commit()  # end the read transaction: the check talks to the provider
        zones.check_zone(plan)
        zone = zones.update_zone(session, kek, plan=plan, actor=actor, **where)
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
    """Applies ``patch``, checks the result at the CA, and only then stores it."""
    where = {"project_id": project_id, "issuer_id": issuer_id}
    with _clean_on_error(session):
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
