"""Preflight: everything the service checks before a request is accepted.

Hard errors (unknown issuer, bad names, names outside every zone, a CNAME loop, a broken
CSR) raise InvalidInput. Policy violations and a broken CNAME delegation
(``dns.delegation_broken``) and CAA records that do not allow the issuer
(``caa.not_allowed``, see ``caa_check``) come back as warnings; ``create_certificate``
refuses them for operators and accepts an admin's complete override. ``strict=False`` (the
preflight endpoint and the live form) reports a name with no zone to write to as a
``dns.no_zone`` warning with the CNAME to create instead, so the answer can show it;
creation stays strict.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.certificates import caa_check, fallbacks
from certautopilot.certificates.csr import CsrInfo, parse_csr
from certautopilot.certificates.names import long_common_name_note, normalize_names
from certautopilot.certificates.schemas import (
    CaaCheckOut,
    CertificateIn,
    ChallengeOut,
    PreflightOut,
    PreflightWarning,
)
from certautopilot.certificates.zones import (
    NO_ZONE,
    ZONE_DISABLED,
    ChallengeRoute,
    ChallengeTarget,
    cname_lookup_for,
    route_challenges,
)
from certautopilot.dns import caa, delegation
from certautopilot.dns import service as dns_zones
from certautopilot.dns.models import DnsZone
from certautopilot.errors import InvalidInput
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import learned_limits
from certautopilot.issuers import service as issuers
from certautopilot.issuers.adcs import service as adcs_issuers
from certautopilot.issuers.models import Issuer
from certautopilot.policy import service as policy
from certautopilot.policy.schemas import PolicyRules
from certautopilot.renewal import profiles

MANUAL_DNS_REASON = (
    "Manual DNS: the challenge record has to be published by hand, so this certificate "
    "cannot renew on its own."
)
CSR_REASON = (
    "Bring-your-own CSR: the service never holds this key, so it cannot renew on its own; "
    "renew by request."
)


@dataclass(frozen=True)
class Preflight:
    issuer: Issuer
    names: list[str]
    key_type: str
    csr: CsrInfo | None
    targets: list[ChallengeTarget]
    manual_zone_ids: frozenset[str]
    auto_renew: bool
    auto_renew_disabled_reason: str | None
    rules: PolicyRules
    warnings: list[policy.PolicyWarning]
    adcs_template: str | None = None
    acme_profile: str | None = None
    routes: tuple[ChallengeRoute, ...] = ()
    caa: tuple[caa_check.CaaCheck, ...] = ()
    fallbacks: tuple[Issuer, ...] = ()
    fallback_notes: tuple[str, ...] = ()

    def out(self) -> PreflightOut:
        return PreflightOut(
            issuer=self.issuer.id,
            fallback_issuers=[i.id for i in self.fallbacks],
            common_name=self.names[0],
            sans=self.names,
            key_type=self.key_type,
            auto_renew=self.auto_renew,
            auto_renew_disabled_reason=self.auto_renew_disabled_reason,
            csr_provided=self.csr is not None,
            approval_required=self.rules.approval_required,
            acme_profile=self.acme_profile,
            warnings=[PreflightWarning(**w.as_dict()) for w in self.warnings],
            challenges=[ChallengeOut.model_validate(r.as_dict()) for r in self.routes],
            notes=[
                *(n for n in (long_common_name_note(self.names),) if n),
                *(c.detail for c in self.caa if c.allowed is None),
                *self.fallback_notes,
            ],
            caa=[CaaCheckOut.model_validate(c.as_dict()) for c in self.caa],
        )


def _issuer_of(session: Session, project_id: str, issuer_id: str) -> Issuer:
    issuer = session.get(Issuer, issuer_id)
    if issuer is None or issuer.project_id != project_id:
        raise InvalidInput.field("issuer", f"no issuer {issuer_id!r} in this project")
    issuers.require_enabled(issuer, field="issuer")
    return issuer


def _names(body: CertificateIn, csr: CsrInfo | None) -> list[str]:
    if csr is None:
        return normalize_names(body.common_name, body.sans)
    if body.common_name or body.sans:
        given = normalize_names(body.common_name or csr.names[0], body.sans)
        extra = [n for n in given if n not in csr.names]
        if extra:
            raise InvalidInput.field(
                "sans", f"{', '.join(extra)} not in the CSR; with a CSR the names come from it"
            )
    return csr.names


def preflight(
    session: Session,
    *,
    project_id: str,
    body: CertificateIn,
    strict: bool = True,
    lookup: delegation.CnameLookup | None = None,
    caa_ask: caa.Asker | None = None,
) -> Preflight:
    issuer = _issuer_of(session, project_id, body.issuer)
    csr = parse_csr(body.csr_pem) if body.csr_pem is not None else None
    names = _names(body, csr)
    zones = list(session.scalars(select(DnsZone).where(DnsZone.project_id == project_id)))
    adcs_template = _adcs_template(issuer, body)
    if body.acme_profile is not None:  # reads the CA's directory (cached): no write yet
        profiles.check_profile(issuer, body.acme_profile)
    # AD CS involves no DNS challenge: names need not fall under a project zone.
    routes: tuple[ChallengeRoute, ...] = ()
    dns_warnings: list[policy.PolicyWarning] = []
    targets: list[ChallengeTarget] = []
    if not adcs_template:
        routing = route_challenges(
            names, zones, body.challenge_overrides, lookup or cname_lookup_for(zones)
        )
        if routing.refused and strict:
            raise InvalidInput("; ".join(m for _, m in routing.refused), routing.refused)
        targets, routes = routing.targets, tuple(routing.routes)
        dns_warnings = [policy.PolicyWarning(n.code, n.field, n.message) for n in routing.notices]
        dns_warnings += [policy.PolicyWarning(NO_ZONE, f, m) for f, m in routing.unroutable]
        dns_warnings += [policy.PolicyWarning(ZONE_DISABLED, f, m) for f, m in routing.disabled]
    manual_zone_ids = frozenset(z.id for z in zones if dns_zones.is_manual(z))
    reason = None
    if any(t.zone_id in manual_zone_ids for t in targets):
        # Only when renewing on its own was asked for: an issuance through dns-persist-01
        # turns auto-renew on for such a certificate (workflows.acme_steps._record_persist).
        reason = MANUAL_DNS_REASON if body.auto_renew else None
    elif csr is not None:
        reason = CSR_REASON
    auto_renew = body.auto_renew and reason is None
    key_type = csr.key_type if csr else body.key_type
    rules = policy.rules_of(session, project_id)
    warnings = policy.evaluate(
        rules,
        issuer=issuer,
        names=names,
        key_type=key_type,
        auto_renew=auto_renew,
        key_field="csr_pem" if csr else "key_type",
        names_field="csr_pem" if csr else "sans",
        acme_profile=body.acme_profile,
    )
    chain = fallbacks.resolve(
        session, project_id=project_id, primary=issuer, refs=body.fallback_issuers, rules=rules
    )
    checks: list[caa_check.CaaCheck] = []
    if not adcs_template:  # DNS lookups, before the request's first write
        checks = caa_check.check_names(issuer, names, zones, ask=caa_ask)
    caa_warnings = [
        policy.PolicyWarning(caa_check.NOT_ALLOWED, "issuer", f"{c.name}: {c.detail}")
        for c in checks
        if c.allowed is False
    ]
    fallback_notes: tuple[str, ...] = ()
    if caa_warnings and chain:  # a fallback CAA allows will be used: a note, not a warning
        taker = _caa_fallback(chain, names, zones, caa_ask)
        if taker is not None:
            fallback_notes = tuple(
                f"{w.message}; the fallback issuer {taker.name!r} is allowed and will be used"
                for w in caa_warnings
            )
            caa_warnings = []
    warnings = dns_warnings + caa_warnings + warnings
    limit = learned_limits.warning_for(issuer, names)
    if limit is not None:
        warnings.append(limit)
    return Preflight(
        issuer=issuer,
        names=names,
        key_type=key_type,
        csr=csr,
        targets=targets,
        manual_zone_ids=manual_zone_ids,
        auto_renew=auto_renew,
        auto_renew_disabled_reason=reason,
        rules=rules,
        warnings=warnings,
        adcs_template=adcs_template,
        acme_profile=body.acme_profile,
        routes=routes,
        caa=tuple(checks),
        fallbacks=tuple(chain),
        fallback_notes=fallback_notes,
    )


def _caa_fallback(
    chain: list[Issuer], names: list[str], zones: list[DnsZone], ask: caa.Asker | None
) -> Issuer | None:
    """The first fallback issuer the names' CAA records allow (DNS lookups)."""
    for candidate in chain:
        found = caa_check.check_names(candidate, names, zones, ask=ask)
        if all(c.allowed is not False for c in found):
            return candidate
    return None


def _adcs_template(issuer: Issuer, body: CertificateIn) -> str | None:
    if not issuers.has(issuer, issuer_port.TEMPLATES):
        if body.adcs_template is not None:
            raise InvalidInput.field("adcs_template", "is only for AD CS issuers")
        return None
    if body.challenge_overrides:
        raise InvalidInput.field(
            "challenge_overrides", "AD CS issuance has no DNS challenge to route"
        )
    return adcs_issuers.resolve_template(issuer, body.adcs_template)
