"""Project policy: the rules, and the preflight that turns a request into warnings.

``evaluate`` is pure: it takes the request's facts and the rules and returns one warning
per violated rule, each with a stable ``code``, the field it is about, and a sentence a
person understands. Admins may override warnings per request; operators may not.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates.names import base_name
from certautopilot.clock import utcnow
from certautopilot.errors import InvalidInput
from certautopilot.issuers.models import Issuer
from certautopilot.policy.models import ProjectPolicy
from certautopilot.policy.schemas import PolicyRules


@dataclass(frozen=True)
class PolicyWarning:
    code: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "message": self.message}


class PolicyViolation(InvalidInput):
    """A request that breaks project policy and was not (validly) overridden."""

    title = "Policy violation"

    def __init__(self, detail: str = "", warnings: list[dict[str, str]] | None = None) -> None:
        warnings = list(warnings or [])
        super().__init__(detail, [(w["field"], w["message"]) for w in warnings])
        self.args = (detail, warnings)
        self.warnings = warnings


def get_policy(session: Session, project_id: str) -> ProjectPolicy | None:
    return session.get(ProjectPolicy, project_id)


def rules_of(session: Session, project_id: str) -> PolicyRules:
    row = get_policy(session, project_id)
    return PolicyRules.model_validate(row.rules) if row else PolicyRules()


def put_policy(
    session: Session, *, project_id: str, rules: PolicyRules, actor: Actor
) -> ProjectPolicy:
    require(actor, "admin", "Changing the project policy")
    row = get_policy(session, project_id)
    before = PolicyRules.model_validate(row.rules) if row else PolicyRules()
    after = rules.model_dump(mode="json")
    if row is None:
        row = ProjectPolicy(project_id=project_id, rules=after)
        session.add(row)
    row.rules = after
    row.updated_by = actor.email
    row.updated_at = utcnow()
    audit.record(
        session,
        type=EventType.POLICY_UPDATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="project",
        subject_id=project_id,
        detail={"before": before.model_dump(mode="json"), "after": after},
    )
    return row


def _under(name: str, suffix: str) -> bool:
    base = base_name(name)
    return base == suffix or base.endswith("." + suffix)


def _key_bits(key_type: str) -> tuple[str, int]:
    family, _, size = key_type.partition("-")
    bits = {"p256": 256, "p384": 384}.get(size) or int(size)
    return family, bits


def issuer_warnings(
    rules: PolicyRules, issuer: Issuer, field: str = "issuer"
) -> list[PolicyWarning]:
    """The issuer rules (``allowed_issuers``, ``denied_acme_directories``): for the chosen
    issuer and for each fallback issuer alike."""
    warnings: list[PolicyWarning] = []
    if rules.allowed_issuers is not None and not (
        {issuer.id, issuer.name} & set(rules.allowed_issuers)
    ):
        warnings.append(
            PolicyWarning(
                "issuer_not_allowed",
                field,
                f"Project policy does not allow the issuer {issuer.name!r}.",
            )
        )
    directory = str(issuer.config.get("directory_url") or "")
    for pattern in rules.denied_acme_directories:
        if directory and fnmatch.fnmatch(directory, pattern):
            warnings.append(
                PolicyWarning(
                    "acme_directory_denied",
                    field,
                    f"The issuer {issuer.name!r} uses {directory}, which project policy bans "
                    f"({pattern}).",
                )
            )
            break
    return warnings


def evaluate(
    rules: PolicyRules,
    *,
    issuer: Issuer,
    names: list[str],
    key_type: str,
    auto_renew: bool,
    key_field: str = "key_type",
    names_field: str = "sans",
    acme_profile: str | None = None,
) -> list[PolicyWarning]:
    warnings: list[PolicyWarning] = []
    if (
        acme_profile is not None
        and rules.allowed_acme_profiles is not None
        and acme_profile not in rules.allowed_acme_profiles
    ):
        allowed = ", ".join(rules.allowed_acme_profiles) or "none (the CA's default only)"
        warnings.append(
            PolicyWarning(
                "acme_profile_not_allowed",
                "acme_profile",
                f"Project policy does not allow the ACME profile {acme_profile!r} "
                f"(allowed: {allowed}).",
            )
        )
    warnings += issuer_warnings(rules, issuer)
    if rules.allowed_key_types is not None and key_type not in rules.allowed_key_types:
        warnings.append(
            PolicyWarning(
                "key_type_not_allowed",
                key_field,
                f"Key type {key_type} is not allowed here; use one of "
                f"{', '.join(rules.allowed_key_types)}.",
            )
        )
    family, bits = _key_bits(key_type)
    minimum = rules.min_rsa_bits if family == "rsa" else rules.min_ecdsa_bits
    if minimum is not None and bits < minimum:
        warnings.append(
            PolicyWarning(
                "key_too_small",
                key_field,
                f"A {bits}-bit {family.upper()} key is below the project's minimum "
                f"of {minimum} bits.",
            )
        )
    for suffix in rules.required_san_suffixes:
        if not any(_under(n, suffix) for n in names):
            warnings.append(
                PolicyWarning(
                    "san_suffix_required",
                    names_field,
                    f"Every certificate in this project must include a name under {suffix}.",
                )
            )
    if rules.allowed_name_suffixes is not None:
        for name in names:
            if not any(_under(name, s) for s in rules.allowed_name_suffixes):
                warnings.append(
                    PolicyWarning(
                        "name_not_allowed",
                        names_field,
                        f"{name} is outside the names this project may use "
                        f"({', '.join(rules.allowed_name_suffixes)}).",
                    )
                )
    for cn_rule in rules.forbidden_cn_patterns:
        if names and cn_rule.matches(names[0]):
            warnings.append(
                PolicyWarning(
                    "cn_forbidden",
                    "common_name",
                    f"The common name {names[0]} matches the forbidden pattern "
                    f"{cn_rule.pattern!r} ({cn_rule.kind}).",
                )
            )
    if rules.mandatory_auto_renew and not auto_renew:
        warnings.append(
            PolicyWarning(
                "auto_renew_required",
                "auto_renew",
                "Project policy requires auto-renew for every certificate.",
            )
        )
    return warnings


def check_override(
    warnings: list[PolicyWarning], override: dict[str, Any] | None, actor: Actor
) -> dict[str, Any] | None:
    """None when there is nothing to override; the accepted override otherwise.

    Raises PolicyViolation when an operator meets a warning, or an admin's override is
    missing a reason or leaves a warning code unacknowledged.
    """
    if not warnings:
        return None
    listed = [w.as_dict() for w in warnings]
    codes = sorted({w.code for w in warnings})
    if not actor.at_least("admin"):
        raise PolicyViolation(
            "The request breaks project policy: "
            + " ".join(w.message for w in warnings)
            + " Only a project admin may override it.",
            listed,
        )
    if override is None:
        raise PolicyViolation(
            "The request breaks project policy. An admin may override it with "
            '"override": {"reason": "...", "acknowledged": ['
            + ", ".join(f'"{c}"' for c in codes)
            + "]}.",
            listed,
        )
    reason = str(override.get("reason") or "").strip()
    acknowledged = override.get("acknowledged") or []
    if not isinstance(acknowledged, list):
        acknowledged = []
    missing = [c for c in codes if c not in acknowledged]
    if not reason or missing:
        problems = []
        if not reason:
            problems.append("give a reason")
        if missing:
            problems.append("acknowledge " + ", ".join(missing))
        raise PolicyViolation("The override is incomplete: " + " and ".join(problems) + ".", listed)
    return {"reason": reason, "acknowledged": codes}
