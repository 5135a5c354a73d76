"""ACME profiles (draft-aaron-acme-profiles): a certificate may name one of the profiles its
CA's directory advertises in ``meta.profiles``; every order for it - the first issuance and
each renewal - asks for that profile. Stored in ``renewal_states.acme_profile``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.errors import InvalidInput
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.renewal.acme_info import advertised_profiles, fetch_directory
from certautopilot.renewal.models import RenewalState

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


def set_profile(session: Session, *, certificate_id: str, profile: str | None) -> None:
    state = session.get(RenewalState, certificate_id)
    if state is None:
        if profile is None:
            return
        state = RenewalState(certificate_id=certificate_id, attempts=0, warnings_sent=[])
        session.add(state)
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
