"""Project policy through the API: every rule x (operator refused, admin override accepted
and audited, admin override missing a code refused), preflight, the policy endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, create_project

RULES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    # (case id, policy rules, request fields, expected warning code)
    ("allowed_issuers", {"allowed_issuers": ["some-other-issuer"]}, {}, "issuer_not_allowed"),
    (
        "denied_directory",
        {"denied_acme_directories": ["https://127.0.0.1:*"]},
        {},
        "acme_directory_denied",
    ),
    ("key_types", {"allowed_key_types": ["ecdsa-p384"]}, {}, "key_type_not_allowed"),
    ("min_rsa", {"min_rsa_bits": 3072}, {"key_type": "rsa-2048"}, "key_too_small"),
    ("required_suffix", {"required_san_suffixes": ["sub.example.test"]}, {}, "san_suffix_required"),
    ("allowed_names", {"allowed_name_suffixes": ["sub.example.test"]}, {}, "name_not_allowed"),
    (
        "cn_glob",
        {"forbidden_cn_patterns": [{"pattern": "*.example.test", "kind": "glob"}]},
        {"common_name": "*.example.test"},
        "cn_forbidden",
    ),
    (
        "cn_regex",
        {"forbidden_cn_patterns": [{"pattern": r"^\*\.", "kind": "regex"}]},
        {"common_name": "*.example.test"},
        "cn_forbidden",
    ),
    ("auto_renew", {"mandatory_auto_renew": True}, {"auto_renew": False}, "auto_renew_required"),
]


def _operator(service: Service, project: Project) -> str:
    email = f"op-{project.slug}@example.test"
    service.ok(
        "POST", f"/projects/{project.slug}/members", 201, json={"email": email, "role": "operator"}
    )
    return service.token_for(email)


@pytest.mark.parametrize(("case", "rules", "fields", "code"), RULES, ids=[r[0] for r in RULES])
def test_policy_rule_matrix(
    service: Service,
    lab: LabInfo,
    case: str,
    rules: dict[str, Any],
    fields: dict[str, Any],
    code: str,
) -> None:
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json=rules)
    request = {
        "issuer": project.issuer_id,
        "common_name": f"{case.replace('_', '-')}.example.test",
        **fields,
    }
    operator = _operator(service, project)

    preflight = service.ok("POST", f"/projects/{p}/certificates/preflight", json=request)
    assert code in [w["code"] for w in preflight["warnings"]]
    assert all(w["message"] and w["field"] for w in preflight["warnings"])

    refused = service.call("POST", f"/projects/{p}/certificates", token=operator, json=request)
    assert refused.status_code == 422, refused.text
    assert code in [w["code"] for w in refused.json()["warnings"]]
    assert "admin" in refused.json()["detail"]

    codes = sorted({w["code"] for w in preflight["warnings"]})
    no_override = service.call("POST", f"/projects/{p}/certificates", json=request)
    assert no_override.status_code == 422
    missing = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={**request, "override": {"reason": "change CHG-42", "acknowledged": codes[1:]}},
    )
    assert missing.status_code == 422
    assert codes[0] in missing.json()["detail"]
    no_reason = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={**request, "override": {"reason": " ", "acknowledged": codes}},
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]

    accepted = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={**request, "override": {"reason": "change CHG-42", "acknowledged": codes}},
    )
    events = service.timeline(p, accepted["id"])["events"]
    overridden = next(e for e in events if e["type"] == "policy.overridden")
    assert overridden["actor"] == "admin@example.test"
    assert overridden["detail"]["reason"] == "change CHG-42"
    assert code in overridden["detail"]["acknowledged"]


def test_clean_request_has_no_warnings_and_override_is_refused(
    service: Service, project: Project
) -> None:
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"allowed_key_types": ["ecdsa-p256"]})
    request = {
        "issuer": project.issuer_id,
        "common_name": "Clean.Example.Test",
        "sans": ["clean.example.test", "www.clean.example.test"],
    }
    result = service.ok("POST", f"/projects/{p}/certificates/preflight", json=request)
    assert result["warnings"] == []
    assert result["sans"] == ["clean.example.test", "www.clean.example.test"]
    assert result["approval_required"] is False
    response = service.call(
        "POST",
        f"/projects/{p}/certificates",
        json={**request, "override": {"reason": "x", "acknowledged": []}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "override"


def test_policy_endpoint_admin_only_validated_and_audited(
    service: Service, project: Project
) -> None:
    p = project.slug
    operator = _operator(service, project)
    assert service.call("GET", f"/projects/{p}/policy", token=operator).status_code == 403
    assert (
        service.call(
            "PUT", f"/projects/{p}/policy", token=operator, json={"approval_required": True}
        ).status_code
        == 403
    )
    bad = service.call(
        "PUT",
        f"/projects/{p}/policy",
        json={"forbidden_cn_patterns": [{"pattern": "([", "kind": "regex"}]},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].startswith("forbidden_cn_patterns")
    assert "regular expression" in bad.text
    unknown = service.call("PUT", f"/projects/{p}/policy", json={"no_such_rule": True})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "no_such_rule"

    service.ok("PUT", f"/projects/{p}/policy", json={"min_rsa_bits": 3072})
    saved = service.ok("PUT", f"/projects/{p}/policy", json={"min_rsa_bits": 4096})
    assert saved["rules"]["min_rsa_bits"] == 4096
    assert saved["updated_by"] == "admin@example.test"
    assert service.ok("GET", f"/projects/{p}/policy")["rules"]["min_rsa_bits"] == 4096
    from sqlalchemy import select

    from certautopilot.audit.models import AuditEvent
    from certautopilot.db.session import make_engine, make_sessionmaker

    engine = make_engine(service.settings)
    with make_sessionmaker(engine)() as session:
        events = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.type == "policy.updated", AuditEvent.project_id.is_not(None))
                .order_by(AuditEvent.id)
            )
        )
    engine.dispose()
    last = events[-1]
    assert last.detail["before"]["min_rsa_bits"] == 3072
    assert last.detail["after"]["min_rsa_bits"] == 4096
