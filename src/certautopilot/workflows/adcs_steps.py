"""AD CS enrollment inside the issuance workflow: its steps and its wait for a CA manager.

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

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dbos import DBOS
from sqlalchemy.orm import Session

from certautopilot.audit.events import EventType
from certautopilot.certificates import material
from certautopilot.certificates.schemas import CaApprovalAction
from certautopilot.certificates.states import CertStatus, VersionStatus, transition
from certautopilot.clock import utcnow
from certautopilot.crypto import keys
from certautopilot.errors import CertAutoPilotError, IssuerError, TransientIssuerError
from certautopilot.issuers.adcs import client as adcs_client
from certautopilot.issuers.adcs import pages
from certautopilot.issuers.adcs import service as adcs_issuers
from certautopilot.issuers.adcs.client import AdcsClient, Issued
from certautopilot.issuers.adcs.models import AdcsRequest
from certautopilot.issuers.adcs.states import AdcsStatus
from certautopilot.issuers.adcs.states import transition as adcs_transition
from certautopilot.issuers.models import Issuer
from certautopilot.workflows.acme_steps import retrying_step
from certautopilot.workflows.faults import pause_point
from certautopilot.workflows.issued import store_issued
from certautopilot.workflows.records import load, record_event, set_step, tx
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


# -- per-worker clients ----------------------------------------------------------------


def _client(session: Session, issuer_id: str) -> tuple[AdcsClient, Issuer]:
    rt = runtime()
    issuer = session.get(Issuer, issuer_id)
    assert issuer is not None
    key = f"adcs:{issuer_id}:{adcs_issuers.config_fingerprint(issuer)}"
    client = rt.cache.get(key)
    if client is None:
        client = AdcsClient(adcs_issuers.settings_for(session, rt.kek, issuer))
        rt.cache[key] = client
    assert isinstance(client, AdcsClient)
    return client, issuer


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
        client, _ = _client(session, cert.issuer_id)
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
    with client.session() as ca:
        submission = ca.submit(csr_pem, template)
        fetched: Issued | pages.RequestStatus | None = None
        pool: list[x509.Certificate] = []
        if submission.kind == "issued" and submission.request_id is not None:
            fetched = ca.fetch(submission.request_id)
            if isinstance(fetched, Issued):
                pool = ca.ca_chain()
    pause_point("adcs_after_submit")
    if submission.kind == "issued" and isinstance(fetched, Issued):
        _store(version_id, fetched, pool, submitted=True)
        return Enrollment("issued", fetched.request_id)
    if submission.kind in ("issued", "pending") and submission.request_id is not None:
        return _pending(version_id, issuer_id, submission.request_id, template)
    if submission.kind == "denied":
        _denied(version_id, submission.request_id, submission.message, template)
        raise IssuerError(
            _denial_text(submission.request_id, template, submission.message),
            adcs_client.PT_UNKNOWN_TEMPLATE
            if submission.unknown_template
            else adcs_client.PT_DENIED,
        )
    raise IssuerError(
        f"the CA answered the submission with a page this service does not recognise: "
        f"{submission.message}",
        adcs_client.PT_UNEXPECTED,
    )


@DBOS.step(name="adcs.check")
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
        client, _ = _client(session, issuer_id)
    try:
        with client.session() as ca:
            fetched = ca.fetch(request_id)
            pool = ca.ca_chain() if isinstance(fetched, Issued) else []
    except TransientIssuerError as exc:
        # A CA outage during a long wait is not a reason to give up: try again later.
        return _still_pending(version_id, issuer_id, request_id, by, f"the check failed: {exc}")
    if isinstance(fetched, Issued):
        _store(version_id, fetched, pool, submitted=False, by=by)
        return Enrollment("issued", request_id)
    if fetched.kind == "pending":
        return _still_pending(version_id, issuer_id, request_id, by, None)
    if fetched.kind == "denied":
        _denied(version_id, request_id, fetched.message, template)
        raise IssuerError(
            _denial_text(request_id, template, fetched.message), adcs_client.PT_DENIED
        )
    if fetched.kind == "not_found":
        raise IssuerError(
            f"the CA does not know request {request_id} any more ({fetched.message})",
            adcs_client.PT_NOT_FOUND,
        )
    raise IssuerError(
        f"certnew.cer for request {request_id} answered with a page this service does not "
        f"recognise: {fetched.message}",
        adcs_client.PT_UNEXPECTED,
    )


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
    issued: Issued,
    pool: list[x509.Certificate],
    *,
    submitted: bool,
    by: str | None = None,
) -> None:
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status == VersionStatus.ISSUED:
            return
        assert version.csr_pem is not None
        csr = x509.load_pem_x509_csr(version.csr_pem.encode())
        leaf = issued.certificate
        if _spki(leaf.public_key()) != _spki(csr.public_key()):
            raise IssuerError(
                f"the CA's certificate for request {issued.request_id} is not for this "
                f"request's key (subject {leaf.subject.rfc4514_string()})",
                adcs_client.PT_UNEXPECTED,
            )
        chain_pem = pages.to_pem(pages.order_chain(leaf, pool))
        request = session.get(AdcsRequest, version_id)
        if request is not None:
            request.request_id = issued.request_id
            request.status = adcs_transition(request.status, AdcsStatus.ISSUED)
            request.disposition = "Issued"
        record_event(
            session,
            cert,
            EventType.ADCS_REQUEST_ISSUED,
            {
                "request_id": issued.request_id,
                "template": request.template if request else None,
                "at_once": submitted,
            },
            actor=by or "system",
        )
        missing = sorted(set(cert.names) - set(keys.cert_info(pages.to_pem([leaf])).names))
        if missing:
            record_event(session, cert, EventType.ADCS_NAMES_MISSING, {"names": missing})
        store_issued(session, cert, version, chain_pem)


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
