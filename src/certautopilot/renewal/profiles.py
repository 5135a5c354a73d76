"""ACME profiles (draft-ietf-acme-profiles): a certificate may name one of the profiles its
CA's directory advertises in ``meta.profiles`` (and project policy allows:
``allowed_acme_profiles``); every order for it - the first issuance and each renewal - asks
for that profile in newOrder. Stored in ``renewal_states.acme_profile``. What a profile
means for renewal (a 6-day ``shortlived`` certificate renews at half its lifetime) follows
the certificate's real lifetime, not the profile's name (``windows``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.errors import CertAutoPilotError, InvalidInput
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.renewal.acme_info import advertised_profiles, fetch_directory
from certautopilot.renewal.models import RenewalState
from certautopilot.renewal.state_rows import ensure_state

DirectoryFetcher = Callable[[str, str | None], dict[str, Any]]


def check_profile(
    issuer: Issuer, profile: str, *, fetch: DirectoryFetcher = fetch_directory
) -> None:
    """Refuses a profile the issuer's CA does not advertise (or an issuer that is not ACME).
    Reads the directory over the network: call it before the request's first write."""
    if not issuers.has(issuer, issuer_port.PROFILES):
        raise InvalidInput.field("acme_profile", "only ACME issuers have profiles")
    directory = fetch(issuer.config["directory_url"], issuer.config.get("ca_bundle_pem"))
    offered = advertised_profiles(directory)
    if profile not in offered:
        known = ", ".join(sorted(offered)) or "none"
        raise InvalidInput.field(
            "acme_profile",
            f"the CA's directory does not advertise the profile {profile!r} (it offers: {known})",
        )


def offered(issuer: Issuer, *, fetch: DirectoryFetcher = fetch_directory) -> dict[str, str]:
    """The profiles the issuer's CA advertises now (none for an issuer that is not ACME);
    an unreadable directory raises the CA's error (``IssuerError``)."""
    if not issuers.has(issuer, issuer_port.PROFILES):
        return {}
    return advertised_profiles(
        fetch(issuer.config["directory_url"], issuer.config.get("ca_bundle_pem"))
    )


@dataclass(frozen=True)
class OfferedProfile:
    issuer_id: str
    issuer: str
    name: str
    description: str


def offered_by(
    project_issuers: list[Issuer], *, fetch: DirectoryFetcher = fetch_directory
) -> list[OfferedProfile]:
    """The profiles each ACME issuer's directory advertises (for the new-certificate form);
    an issuer whose directory cannot be read offers none here (preflight will say why)."""
    found: list[OfferedProfile] = []
    for issuer in project_issuers:
        if not issuers.has(issuer, issuer_port.PROFILES):
            continue
        try:
            directory = fetch(issuer.config["directory_url"], issuer.config.get("ca_bundle_pem"))
        except CertAutoPilotError:
            continue
        for name, description in sorted(advertised_profiles(directory).items()):
            found.append(OfferedProfile(issuer.id, issuer.name, name, description))
    return found


def set_profile(session: Session, *, certificate_id: str, profile: str | None) -> None:
    state = session.get(RenewalState, certificate_id)
    if state is None:
        if profile is None:
            return
        state = ensure_state(session, certificate_id)
    state.acme_profile = profile


def profile_of(session: Session, certificate_id: str) -> str | None:
    state = session.get(RenewalState, certificate_id)
    return state.acme_profile if state is not None else None


def profiles_of(session: Session, certificate_ids: list[str]) -> dict[str, str]:
    """certificate id -> profile, for those of ``certificate_ids`` that name one (one query)."""
    if not certificate_ids:
        return {}
    rows = session.execute(
        select(RenewalState.certificate_id, RenewalState.acme_profile).where(
            RenewalState.certificate_id.in_(certificate_ids),
            RenewalState.acme_profile.is_not(None),
        )
    ).all()
    return {cert_id: profile for cert_id, profile in rows if profile}
