"""AD CS enrollment inside the issuance workflow: its steps and its wait for a CA manager.

The CA is reached only through the issuer port (``issuers.interfaces``; the AD CS plugin
implements it): ``order`` submits, ``poll`` checks a request, ``finalize`` downloads. The
request rows, the approval deadline and the timeline are the core's, here.

Happy path, one step: ``adcs.enroll`` (key + CSR stored, submitted to ``certfnsh.asp``
with the template; issued at once → certificate and CA chain fetched and stored). A
template that needs CA-manager approval leaves the certificate ``awaiting_ca`` with the
CA's request id; :func:`run` then sleeps durably in ``DBOS.recv(CA_CHECK, interval)`` —
``POST …/check-ca`` wakes it early — and ``adcs.check`` asks the CA again, until the
request is issued, denied, or past the issuer's approval deadline.

Like the ACME steps, each is idempotent (a stored request id is never submitted again) and
takes and returns only ids and public values; the password or client key is read from the
encrypted store inside the step and never leaves it. CA errors arrive as
``certautopilot.errors`` classes (see ``issuers.adcs.client``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from dbos import DBOS
from sqlalchemy.orm import Session

from certautopilot.audit.events import EventType
from certautopilot.certificates import material
from certautopilot.certificates.schemas import CaApprovalAction
from certautopilot.certificates.states import CertStatus, VersionStatus, transition
from certautopilot.clock import utcnow
from certautopilot.crypto import keys
from certautopilot.errors import CertAutoPilotError, IssuerError, TransientIssuerError
from certautopilot.issuers import service as issuers
from certautopilot.issuers.adcs import client as adcs_client
from certautopilot.issuers.adcs import service as adcs_issuers
from certautopilot.issuers.adcs.models import AdcsRequest
from certautopilot.issuers.adcs.states import AdcsStatus
from certautopilot.issuers.adcs.states import transition as adcs_transition
from certautopilot.issuers.interfaces import (
    CertificateAuthority,
    OrderOptions,
    RequestDenied,
)
from certautopilot.issuers.models import Issuer
from certautopilot.workflows.acme_steps import retrying_step
from certautopilot.workflows.faults import pause_point
from certautopilot.workflows.issued import store_issued
from certautopilot.workflows.records import load, record_event, set_step, tx
from certautopilot.workflows.retries import db_step
from certautopilot.workflows.runtime import runtime

log = logging.getLogger(__name__)
CA_CHECK = "ca_check"
PT_APPROVAL_TIMEOUT = "urn:certautopilot:adcs:approval-timeout"


@dataclass(frozen=True)
class Enrollment:
    """Where the request stands. ``wait``: seconds until the next check when pending."""

    state: Literal["issued", "pending", "done"]
    request_id: int | None = None
    wait: float = 0.0


# -- the workflow's part (deterministic: only steps and recv) ----------------------------


def run(version_id: str) -> str:
    """Enrolls, then waits for a CA manager as long as the request is pending."""
    outcome = enroll(version_id)
    while outcome.state == "pending":
        message = DBOS.recv(CA_CHECK, timeout_seconds=outcome.wait)
        by = str(message.get("by")) if isinstance(message, dict) else None
        outcome = check(version_id, by)
    return "done" if outcome.state == "done" else "issued"


# -- per-worker clients (``Runtime``; an edited issuer gets a fresh one) ---------------

FETCH_TIMEOUT = 90.0


def _ca(session: Session, issuer_id: str) -> CertificateAuthority:
    rt = runtime()
    issuer = session.get(Issuer, issuer_id)
    assert issuer is not None
    return rt.issuers.get(
        issuer_id, issuers.fingerprint(issuer), lambda: issuers.connect(session, rt.kek, issuer)
    )


# -- steps -------------------------------------------------------------------------------


@retrying_step("adcs.enroll")
def enroll(version_id: str) -> Enrollment:
    """Key + CSR (stored first, so a retry submits the same CSR), then one submission; a
    request id the CA already handed out is checked, never submitted again."""
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status != VersionStatus.PENDING:
            return Enrollment("done")
        request = session.get(AdcsRequest, version_id)
        template = request.template if request else adcs_issuers.template_of(session, cert.id)
        if template is None:
            raise CertAutoPilotError("no AD CS template is recorded for this certificate")
        ca = _ca(session, cert.issuer_id)
        issuer_id, csr_pem = cert.issuer_id, version.csr_pem
        key_type, names = cert.key_type, list(cert.names)
        known_id = request.request_id if request else None
    if known_id is not None:
        return _check(version_id, issuer_id, known_id, template, None)
    if csr_pem is None:
        key = keys.generate_key(key_type)
        csr_pem = _store_key(
            version_id, keys.build_csr(key, names).decode(), keys.key_to_pem(key), key_type
        )
    _open_request(version_id, template)
    try:
        order = ca.order(csr_pem, OrderOptions(profile=template))
        chain = (
            ca.finalize(order, csr_pem, timeout=FETCH_TIMEOUT) if order.state == "issued" else None
        )
    except RequestDenied as exc:
        _denied(version_id, _int(exc.ref), exc.disposition, template)
        raise
    pause_point("adcs_after_submit")
    request_id = int(order.ref)
    if chain is not None:
        _store(version_id, request_id, chain, submitted=True)
        return Enrollment("issued", request_id)
    return _pending(version_id, issuer_id, request_id, template)


def _int(ref: str | None) -> int | None:
    return int(ref) if ref is not None else None


@db_step("adcs.check")
def check(version_id: str, by: str | None) -> Enrollment:
    """Asks the CA about the pending request (periodically, or because someone asked)."""
    with tx() as session:
        version, cert = load(session, version_id)
        request = session.get(AdcsRequest, version_id)
        if version.status != VersionStatus.PENDING or request is None or request.request_id is None:
            return Enrollment("done")
        issuer_id, request_id, template = cert.issuer_id, request.request_id, request.template
    return _check(version_id, issuer_id, request_id, template, by)


def _check(
    version_id: str, issuer_id: str, request_id: int, template: str, by: str | None
) -> Enrollment:
    with tx() as session:
        ca = _ca(session, issuer_id)
    with tx() as session:
        version, _ = load(session, version_id)
        csr_pem = version.csr_pem
    assert csr_pem is not None
    try:
        order = ca.poll(str(request_id))
        chain = (
            ca.finalize(order, csr_pem, timeout=FETCH_TIMEOUT) if order.state == "issued" else None
        )
    except TransientIssuerError as exc:
        # A CA outage during a long wait is not a reason to give up: try again later.
        return _still_pending(version_id, issuer_id, request_id, by, f"the check failed: {exc}")
    except RequestDenied as exc:
        _denied(version_id, request_id, exc.disposition, template)
        raise IssuerError(
            _denial_text(request_id, template, exc.disposition), adcs_client.PT_DENIED
        ) from exc
    if chain is not None:
        _store(version_id, request_id, chain, submitted=False, by=by)
        return Enrollment("issued", request_id)
    return _still_pending(version_id, issuer_id, request_id, by, None)


# -- writes ------------------------------------------------------------------------------


def _store_key(version_id: str, csr_pem: str, key_pem: bytes, key_type: str) -> str:
    """Stores the key and CSR unless a previous attempt did; returns the CSR to submit."""
    with tx() as session:
        version, cert = load(session, version_id)
        if version.csr_pem is not None:
            return version.csr_pem
        material.store_private_key(session, runtime().kek, version, key_pem)
        version.csr_pem = csr_pem
        record_event(session, cert, EventType.KEY_GENERATED, {"key_type": key_type})
    return csr_pem


def _open_request(version_id: str, template: str) -> None:
    with tx() as session:
        _, cert = load(session, version_id)
        if session.get(AdcsRequest, version_id) is None:
            session.add(
                AdcsRequest(version_id=version_id, certificate_id=cert.id, template=template)
            )
        cert.status = transition(cert.status, CertStatus.ISSUING)
        set_step(session, cert, "submitting")


def _pending(version_id: str, issuer_id: str, request_id: int, template: str) -> Enrollment:
    now = utcnow()
    with tx() as session:
        _, cert = load(session, version_id)
        issuer = session.get(Issuer, issuer_id)
        assert issuer is not None
        interval = float(issuer.config["check_interval_seconds"])
        timeout = int(issuer.config["approval_timeout_seconds"])
        request = session.get(AdcsRequest, version_id)
        assert request is not None
        request.request_id = request_id
        request.status = adcs_transition(request.status, AdcsStatus.PENDING)
        request.disposition = "Taken Under Submission"
        request.deadline_at = now + timedelta(seconds=timeout)
        cert.status = transition(cert.status, CertStatus.AWAITING_CA)
        cert.pending_action = CaApprovalAction(
            request_id=request_id,
            template=template,
            deadline=request.deadline_at,
            message=(
                f"Request {request_id} (template {template}) waits for a CA manager's "
                f"approval on the CA. The service checks every {int(interval)} s; "
                "POST …/check-ca checks now."
            ),
        ).model_dump(mode="json")
        set_step(session, cert, "awaiting_ca")
        record_event(
            session,
            cert,
            EventType.ADCS_REQUEST_PENDING,
            {
                "request_id": request_id,
                "template": template,
                "deadline": request.deadline_at.isoformat(),
            },
        )
    return Enrollment("pending", request_id, _wait(interval, request.deadline_at - now))


def _still_pending(
    version_id: str, issuer_id: str, request_id: int, by: str | None, problem: str | None
) -> Enrollment:
    now = utcnow()
    with tx() as session:
        _, cert = load(session, version_id)
        issuer = session.get(Issuer, issuer_id)
        request = session.get(AdcsRequest, version_id)
        assert issuer is not None and request is not None
        request.last_checked_at = now
        request.checks += 1
        deadline = request.deadline_at or now
        if by is not None or problem is not None:
            record_event(
                session,
                cert,
                EventType.ADCS_REQUEST_CHECKED,
                {"request_id": request_id, "result": problem or "still pending"},
                actor=by or "system",
            )
        if cert.pending_action is not None:
            action = CaApprovalAction.model_validate(cert.pending_action)
            cert.pending_action = action.model_copy(
                update={"last_checked_at": now, "last_problem": problem}
            ).model_dump(mode="json")
        interval = float(issuer.config["check_interval_seconds"])
        days = float(issuer.config["approval_timeout_seconds"]) / 86_400
    if now >= deadline:
        raise IssuerError(
            f"No CA manager approved request {request_id} within {days:g} days (deadline "
            f"{deadline.isoformat()}). It may still be pending on the CA: deny it there, and "
            "request the certificate again once it can be approved.",
            PT_APPROVAL_TIMEOUT,
        )
    return Enrollment("pending", request_id, _wait(interval, deadline - now))


def _wait(interval: float, left: timedelta) -> float:
    return max(0.5, min(interval, left.total_seconds() + 0.5))


def _denied(version_id: str, request_id: int | None, message: str, template: str) -> None:
    with tx() as session:
        _, cert = load(session, version_id)
        request = session.get(AdcsRequest, version_id)
        if request is not None:
            request.request_id = request_id if request_id is not None else request.request_id
            request.status = adcs_transition(request.status, AdcsStatus.DENIED)
            request.disposition = message[:500]
        record_event(
            session,
            cert,
            EventType.ADCS_REQUEST_DENIED,
            {"request_id": request_id, "template": template, "disposition": message},
        )


def _denial_text(request_id: int | None, template: str, message: str) -> str:
    which = f"request {request_id}" if request_id is not None else "the request"
    return f"The CA denied {which} (template {template}): {message}"


def _store(
    version_id: str,
    request_id: int,
    chain_pem: str,
    *,
    submitted: bool,
    by: str | None = None,
) -> None:
    """Stores the chain the plugin downloaded (it checked the leaf is for the CSR's key)."""
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status == VersionStatus.ISSUED:
            return
        request = session.get(AdcsRequest, version_id)
        if request is not None:
            request.request_id = request_id
            request.status = adcs_transition(request.status, AdcsStatus.ISSUED)
            request.disposition = "Issued"
        record_event(
            session,
            cert,
            EventType.ADCS_REQUEST_ISSUED,
            {
                "request_id": request_id,
                "template": request.template if request else None,
                "at_once": submitted,
            },
            actor=by or "system",
        )
        leaf_pem = keys.split_pem_chain(chain_pem)[0]
        missing = sorted(set(cert.names) - set(keys.cert_info(leaf_pem).names))
        if missing:
            record_event(session, cert, EventType.ADCS_NAMES_MISSING, {"names": missing})
        store_issued(session, cert, version, chain_pem)
