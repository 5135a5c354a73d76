"""ARI in the scheduler: when an ACME CA's directory offers ``renewalInfo`` (RFC 9773), its
suggested window - a uniformly random point inside it - replaces the lifetime-relative
renewal time; it is asked again after the CA's ``Retry-After``. Without ``renewalInfo``
(Pebble 2.4, many CAs) the lifetime-relative time stands and the directory is looked at
again a day later. Any ARI error keeps the time that was there: ARI can only help.

Three phases so that no network call runs inside a transaction: :func:`target` (read),
:func:`lookup` (network), :func:`apply` (write, re-checking that nothing moved meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.certificates import material
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import CertStatus
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import CertAutoPilotError
from certautopilot.issuers import service as issuers
from certautopilot.issuers.interfaces import ARI
from certautopilot.issuers.models import Issuer
from certautopilot.renewal import acme_info, windows
from certautopilot.renewal.ari import RenewalInfo, cert_id, choose_renewal_time, serial_octets
from certautopilot.renewal.models import RenewalState
from certautopilot.renewal.state_rows import ensure_state

NO_ARI_RECHECK = timedelta(days=1)
ERROR_RECHECK = timedelta(hours=1)
#: A short-lived certificate's window is asked again after at most this part of its
#: lifetime, whatever the CA's Retry-After (a 6-day certificate: every 12 hours at most).
SHORT_LIVED_RECHECK_FRACTION = 1 / 12


def recheck_after(retry_after_seconds: float, lifetime_seconds: float | None) -> timedelta:
    """When to ask for the window again: the CA's Retry-After (RFC 9773 §4.3), capped for a
    short-lived certificate so that a window the CA moves is seen in time."""
    wait = timedelta(seconds=retry_after_seconds)
    if lifetime_seconds is not None and windows.is_short_lived(timedelta(seconds=lifetime_seconds)):
        wait = min(wait, timedelta(seconds=lifetime_seconds * SHORT_LIVED_RECHECK_FRACTION))
    return wait


@dataclass(frozen=True)
class Target:
    certificate_id: str
    version_id: str
    directory_url: str
    ca_bundle_pem: str | None
    ari_cert_id: str | None
    not_before: datetime | None = None
    lifetime_seconds: float | None = None


def candidates(session: Session, *, now: datetime, limit: int) -> list[str]:
    """ACME certificates renewed automatically, idle, whose ARI check is due: first those
    never asked (a new version), then the longest overdue.

    Both reads go down ``ix_renewal_states_ari_check`` (``version_id``, then
    ``ari_next_check_at``) and stop at ``limit``: at a million certificates, ordering every
    issued certificate to find the few whose check is due took 1.9 s a tick. Every issued
    certificate of an ARI issuer has its state row (``workflows/issued.py``)."""
    never = _due_states(RenewalState.ari_next_check_at.is_(None), RenewalState.certificate_id)
    found = list(session.scalars(never.limit(limit)))
    if len(found) < limit:
        overdue = _due_states(
            RenewalState.ari_next_check_at <= now,
            RenewalState.ari_next_check_at,
            RenewalState.certificate_id,
        )
        found += session.scalars(overdue.limit(limit - len(found)))
    return found


def _due_states(when: ColumnElement[bool], *order: Any) -> Select[str]:
    return (
        select(Certificate.id)
        .select_from(RenewalState)
        .join(Certificate, Certificate.id == RenewalState.certificate_id)
        .join(Issuer, Issuer.id == Certificate.issuer_id)
        .where(
            RenewalState.version_id.is_(None),
            when,
            Issuer.kind.in_(issuers.kinds_with(ARI)),
            Certificate.auto_renew.is_(True),
            Certificate.status == CertStatus.ISSUED,
            Certificate.current_version_id.is_not(None),
            Certificate.next_renewal_at.is_not(None),
        )
        .order_by(*order)
    )


def ari_cert_id_of(cert_pem: str) -> str | None:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    return cert_id(aki.key_identifier, serial_octets(cert.serial_number))


def target(session: Session, kek: KeyEncryptionKey, certificate_id: str) -> Target | None:
    cert = session.get(Certificate, certificate_id)
    if cert is None or cert.current_version_id is None:
        return None
    version = session.get(CertificateVersion, cert.current_version_id)
    if version is None:
        return None
    # the CA that issued the current version (a fallback issuer's, when one was used)
    issuer = session.get(Issuer, version.issuer_id or cert.issuer_id)
    if issuer is None or not issuers.has(issuer, ARI):
        return None
    leaf = material.chain_pem(session, kek, version)  # public; never leaves this process
    return Target(
        certificate_id=cert.id,
        version_id=version.id,
        directory_url=issuer.config["directory_url"],
        ca_bundle_pem=issuer.config.get("ca_bundle_pem"),
        ari_cert_id=ari_cert_id_of(leaf),
        not_before=version.not_before,
        lifetime_seconds=(version.not_after - version.not_before).total_seconds()
        if version.not_after is not None and version.not_before is not None
        else None,
    )


Outcome = RenewalInfo | str  # the window, or "no-ari" / an error message


def lookup(
    t: Target,
    *,
    fetch_directory: Callable[[str, str | None], dict[str, Any]] = acme_info.fetch_directory,
    fetch_info: Callable[[str, str, str | None], RenewalInfo] | None = None,
) -> Outcome:
    """The CA's window (through the issuance clients' transport, see ``issuers.acme.info``)."""
    try:
        base = acme_info.renewal_info_url(fetch_directory(t.directory_url, t.ca_bundle_pem))
        if base is None or t.ari_cert_id is None:
            return "no-ari"
        if fetch_info is None:
            return acme_info.fetch_renewal_info(
                base, t.ari_cert_id, t.ca_bundle_pem, t.directory_url
            )
        return fetch_info(base, t.ari_cert_id, t.ca_bundle_pem)
    except CertAutoPilotError as exc:
        return f"error: {exc}"


def apply(
    session: Session, t: Target, outcome: Outcome, *, now: datetime, unit: float
) -> datetime | None:
    """Writes the ARI renewal time (returned) unless the certificate moved meanwhile."""
    cert = session.get(Certificate, t.certificate_id)
    if cert is None:
        return None
    state = ensure_state(session, cert.id)
    if not isinstance(outcome, RenewalInfo):
        state.ari_next_check_at = now + (NO_ARI_RECHECK if outcome == "no-ari" else ERROR_RECHECK)
        return None
    state.ari_next_check_at = now + recheck_after(outcome.retry_after_seconds, t.lifetime_seconds)
    idle = (
        cert.current_version_id == t.version_id
        and cert.status == CertStatus.ISSUED
        and cert.auto_renew
        and cert.next_renewal_at is not None
        and state.version_id is None
    )
    window = {"start": outcome.start.isoformat(), "end": outcome.end.isoformat()}
    if not idle or state.ari_window == window:
        return None  # same window as last time: keep the point chosen in it
    state.ari_window = window
    at = choose_renewal_time(outcome, now=now, unit=unit, not_before=t.not_before)
    cert.next_renewal_at = at
    audit.record(
        session,
        type=EventType.RENEWAL_SCHEDULED,
        actor="scheduler",
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={
            "next_at": at.isoformat(),
            "source": "ari",
            "window": window,
            **({"explanation_url": outcome.explanation_url} if outcome.explanation_url else {}),
        },
    )
    return at
