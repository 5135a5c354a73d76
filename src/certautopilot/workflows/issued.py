"""What every issuer path does once the CA has handed over a certificate.

ACME and AD CS both call :func:`store_issued` inside their final write transaction:
the chain is stored encrypted, the version and certificate become ``issued``, the renewal
time is computed, and the timeline records ``cert.issued`` (or ``cert.renewed``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from certautopilot.audit.events import EventType
from certautopilot.certificates import material
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import (
    CertStatus,
    VersionStatus,
    transition,
    transition_version,
)
from certautopilot.crypto import keys
from certautopilot.issuers import service as issuers
from certautopilot.issuers.interfaces import ARI
from certautopilot.issuers.models import Issuer
from certautopilot.renewal.models import RenewalState
from certautopilot.renewal.state_rows import ensure_state
from certautopilot.renewal.windows import renewal_time
from certautopilot.workflows import counted
from certautopilot.workflows.distribution import fan_out
from certautopilot.workflows.records import record_event, set_step
from certautopilot.workflows.runtime import runtime


def store_issued(
    session: Session, cert: Certificate, version: CertificateVersion, chain_pem: str
) -> keys.CertInfo:
    info = keys.cert_info(keys.split_pem_chain(chain_pem)[0])
    material.store_chain(session, runtime().kek, version, chain_pem)
    version.status = transition_version(version.status, VersionStatus.ISSUED)
    version.serial = info.serial_hex
    version.not_before = info.not_before
    version.not_after = info.not_after
    version.fingerprint_sha256 = info.fingerprint_sha256
    cert.current_version_id = version.id
    cert.not_after = info.not_after
    cert.status = transition(cert.status, CertStatus.ISSUED)
    cert.error = None
    cert.pending_action = None
    cert.next_renewal_at = (
        renewal_time(
            not_before=info.not_before,
            not_after=info.not_after,
            window=cert.renewal_window,
            jitter_key=cert.id,
        )
        if cert.auto_renew
        else None
    )
    set_step(session, cert, None)
    _forget_old_window(session, cert)
    record_event(
        session,
        cert,
        EventType.CERT_RENEWED if version.reason == "renew" else EventType.CERT_ISSUED,
        {
            "serial": info.serial_hex,
            "not_after": info.not_after.isoformat(),
            "fingerprint_sha256": info.fingerprint_sha256,
            "version": version.seq,
        },
    )
    if cert.next_renewal_at is not None:
        record_event(
            session,
            cert,
            EventType.RENEWAL_SCHEDULED,
            {"next_at": cert.next_renewal_at.isoformat()},
        )
    fan_out(session, cert, version)  # deployments enqueued in this same transaction
    counted.issuance_ended(session, cert, version, outcome="issued")
    return info


def _forget_old_window(session: Session, cert: Certificate) -> None:
    """The CA's renewal window and its Retry-After were about the version just replaced:
    the new current version's renewalInfo is asked for at the next tick, not a day later.

    A certificate from an issuer that speaks ARI always has its ``renewal_states`` row from
    here on, so the tick finds the ones to ask by that table's index
    (``ari_refresh.candidates``) instead of joining every certificate to look for missing
    rows."""
    issuer = session.get(Issuer, cert.issuer_id)  # the issuer the ARI check asks
    if issuer is not None and issuer.kind in issuers.kinds_with(ARI):
        state: RenewalState | None = ensure_state(session, cert.id)
    else:
        state = session.get(RenewalState, cert.id)
    if state is not None:
        state.ari_window = None
        state.ari_next_check_at = None
