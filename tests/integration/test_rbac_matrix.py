"""Every API operation by every kind of caller, generated from the service's own route table.

``POLICY`` says, for each operation in the OpenAPI document, the least a caller must be. The
test fails when an operation is missing from it (a new route must be classified) or when
the running service disagrees with it:

- no token and a bad token are 401 everywhere;
- a caller below the minimum is refused (403; 404 where the id it names does not exist;
  422 where the body is checked before the role), never 2xx, never 5xx;
- a caller at or above the minimum is not refused on reads (mutations are not replayed by
  every role: a permitted one would change what later calls see);
- a member of another project gets 404 for this project's slug, and 404 for this project's
  ids under its own project's slug.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project

USER = "signed-in user"  # any valid token, no project needed
INSTANCE_ADMIN = "instance admin"
ROLES = ("viewer", "operator", "approver", "admin")
RANKS = {USER: -1, **{role: n for n, role in enumerate(ROLES)}, INSTANCE_ADMIN: 99}

P = "/api/v1/projects/{project}"
C = P + "/certificates/{cert_id}"
POLICY: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/projects"): USER,
    ("POST", "/api/v1/projects"): INSTANCE_ADMIN,
    ("GET", "/api/v1/plugins"): USER,
    ("GET", "/api/v1/dns-providers"): USER,
    ("GET", "/api/v1/instance/sessions"): INSTANCE_ADMIN,
    ("DELETE", "/api/v1/instance/sessions"): INSTANCE_ADMIN,
    ("DELETE", "/api/v1/instance/sessions/{session_id}"): INSTANCE_ADMIN,
    ("GET", "/api/v1/tokens"): USER,
    ("POST", "/api/v1/tokens"): USER,
    ("DELETE", "/api/v1/tokens/{token_id}"): USER,
    ("GET", P): "viewer",
    ("POST", P + "/members"): "admin",
    ("GET", P + "/members"): "viewer",
    ("GET", P + "/audit"): "admin",
    ("GET", P + "/audit/verify"): "admin",
    ("DELETE", P + "/members/{email}"): "admin",
    ("POST", P + "/issuers"): "admin",
    ("GET", P + "/issuers"): "viewer",
    ("GET", P + "/issuers/{issuer_id}"): "viewer",
    ("PATCH", P + "/issuers/{issuer_id}"): "admin",
    ("GET", P + "/issuers/{issuer_id}/profiles"): "viewer",
    ("DELETE", P + "/issuers/{issuer_id}"): "admin",
    ("POST", P + "/issuers/{issuer_id}/test"): "admin",
    ("POST", P + "/zones"): "admin",
    ("GET", P + "/zones"): "viewer",
    ("GET", P + "/zones/suggest"): "viewer",
    ("GET", P + "/zones/{zone_id}"): "viewer",
    ("GET", P + "/zones/{zone_id}/caa"): "viewer",
    ("PATCH", P + "/zones/{zone_id}"): "admin",
    ("DELETE", P + "/zones/{zone_id}"): "admin",
    ("POST", P + "/zones/{zone_id}/test"): "admin",
    ("POST", P + "/certificates"): "operator",
    ("GET", P + "/certificates"): "viewer",
    ("POST", P + "/certificates/preflight"): "viewer",
    ("GET", P + "/certificates/expiry-histogram"): "viewer",
    ("GET", P + "/renewals/backlog"): "viewer",
    ("GET", C): "viewer",
    ("POST", C + "/renew"): "operator",
    ("POST", C + "/revoke"): "admin",
    ("GET", C + "/persist-record"): "viewer",
    ("GET", C + "/timeline"): "viewer",
    ("POST", C + "/dns-confirm"): "operator",
    ("POST", C + "/check-ca"): "operator",
    ("GET", C + "/fullchain.pem"): "viewer",
    ("GET", C + "/chain.pem"): "viewer",
    ("GET", C + "/cert.pem"): "viewer",
    ("GET", C + "/key.pem"): "admin",
    ("POST", C + "/certificate.p12"): "admin",
    ("GET", C + "/versions"): "viewer",
    ("GET", C + "/versions/{seq}/{what}.pem"): "viewer",
    ("GET", P + "/policy"): "admin",
    ("PUT", P + "/policy"): "admin",
    ("GET", P + "/requests"): "viewer",
    ("GET", P + "/requests/{request_id}"): "viewer",
    ("POST", P + "/requests/{request_id}/approve"): "approver",
    ("POST", P + "/requests/{request_id}/reject"): "approver",
    ("POST", P + "/notification-channels"): "admin",
    ("GET", P + "/notification-channels"): "admin",
    ("POST", P + "/targets"): "admin",
    ("GET", P + "/targets"): "viewer",
    ("GET", P + "/targets/{target_id}"): "viewer",
    ("PATCH", P + "/targets/{target_id}"): "admin",
    ("DELETE", P + "/targets/{target_id}"): "admin",
    ("POST", P + "/targets/{target_id}/test"): "admin",
    ("GET", C + "/targets"): "viewer",
    ("PUT", C + "/targets"): "operator",
    ("GET", C + "/deployments"): "viewer",
    ("POST", C + "/deploy"): "operator",
    ("POST", P + "/imports"): "operator",
    ("GET", P + "/expiry-alerts"): "viewer",
    ("PUT", P + "/expiry-alerts"): "admin",
}

#: Bodies that pass validation, so the role check (not the schema) answers.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/projects"): {"slug": "rbac-never", "name": "never made"},
    ("POST", "/api/v1/tokens"): {"name": "rbac"},
    ("POST", P + "/members"): {"email": "rbac-never@example.test", "role": "viewer"},
    ("POST", C + "/revoke"): {"reason": "unspecified"},
    ("POST", C + "/certificate.p12"): {"password": "long enough password"},
    ("POST", P + "/requests/{request_id}/approve"): {"comment": ""},
    ("POST", P + "/requests/{request_id}/reject"): {"comment": ""},
    ("POST", C + "/deploy"): {},
    ("PUT", C + "/targets"): {"targets": []},
    ("POST", P + "/imports"): {"files": []},
    ("PUT", P + "/expiry-alerts"): {"thresholds_days": [30, 7]},
}
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", P + "/zones/suggest"): {"name": "www.example.test"},
    ("DELETE", "/api/v1/instance/sessions"): {"email": "rbac-never@example.test"},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    has_body: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def id_params(self) -> set[str]:
        return {
            p
            for p in ("cert_id", "issuer_id", "zone_id", "target_id", "request_id")
            if "{" + p + "}" in self.path
        } | ({"email"} if "{email}" in self.path else set())


@dataclass(frozen=True)
class World:
    params: dict[str, str]
    foreign_slug: str
    tokens: dict[str, str]  # role or USER / INSTANCE_ADMIN / "foreign" → token
    seeded: frozenset[str]  # path params that name a real object in the project


def _operations(service: Service) -> list[Operation]:
    spec = service.client.get("/openapi.json").json()
    return [
        Operation(method.upper(), path, "requestBody" in op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if path.startswith("/api/")
    ]


@pytest.fixture(scope="module")
def world(service: Service, lab: LabInfo) -> Iterator[World]:
    home = create_project(service, lab, manual_zone=False)
    foreign = create_project(service, lab, manual_zone=False)
    slug = home.slug
    stem = uuid.uuid4().hex[:6]
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": home.issuer_id, "common_name": f"rbac-{stem}.example.test"},
    )
    assert service.wait_for(slug, cert["id"], ("issued", "failed"))["status"] == "issued"
    tokens = {INSTANCE_ADMIN: service.admin_token}
    for role in ROLES:
        email = f"rbac-{role}-{stem}@example.test"
        service.ok("POST", f"/projects/{slug}/members", 201, json={"email": email, "role": role})
        tokens[role] = service.token_for(email)
    tokens[USER] = service.token_for(f"rbac-nobody-{stem}@example.test")
    outsider = f"rbac-foreign-{stem}@example.test"
    service.ok(
        "POST", f"/projects/{foreign.slug}/members", 201, json={"email": outsider, "role": "admin"}
    )
    tokens["foreign"] = service.token_for(outsider)
    params = {
        "project": slug,
        "cert_id": cert["id"],
        "issuer_id": home.issuer_id,
        "zone_id": home.zone_ids["example.test"],
        "target_id": f"no-such-target-{stem}",
        "request_id": f"no-such-request-{stem}",
        "email": f"rbac-viewer-{stem}@example.test",
        "seq": "1",
        "what": "cert",
        "session_id": f"no-such-session-{stem}",
        "token_id": f"no-such-token-{stem}",
    }
    seeded = frozenset({"cert_id", "issuer_id", "zone_id", "email"})
    yield World(params=params, foreign_slug=foreign.slug, tokens=tokens, seeded=seeded)


def _call(service: Service, op: Operation, token: str | None, params: dict[str, str]) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"params": QUERIES.get(op.key, {})}
    if op.has_body:
        kwargs["json"] = BODIES.get(op.key, {})
    return service.client.request(op.method, op.path.format(**params), headers=headers, **kwargs)


def test_every_operation_is_classified(service: Service) -> None:
    keys = {op.key for op in _operations(service)}
    assert sorted(keys - POLICY.keys()) == [], "classify these operations in POLICY"
    assert sorted(POLICY.keys() - keys) == [], "these POLICY entries name no operation"


def test_the_matrix(service: Service, world: World) -> None:
    violations: list[str] = []
    calls = 0

    def check(op: Operation, who: str, status: int, allowed: set[int]) -> None:
        nonlocal calls
        calls += 1
        if status not in allowed:
            violations.append(f"{op.method} {op.path} as {who}: {status}, wanted {allowed}")

    for op in _operations(service):
        minimum = POLICY[op.key]
        for who, token in (("no token", None), ("bad token", "cap_not-a-token")):
            check(op, who, _call(service, op, token, world.params).status_code, {401})
        unseeded = bool(op.id_params - world.seeded)
        for who in (USER, *ROLES, INSTANCE_ADMIN):
            refused = RANKS[who] < RANKS[minimum]
            if not refused and op.method != "GET":
                continue  # a permitted mutation would change what later calls see
            status = _call(service, op, world.tokens[who], world.params).status_code
            if refused and who == USER and "{project}" in op.path:
                check(op, who, status, {404})  # not a member: the project does not exist
            elif refused:
                allowed = {403} | ({404} if unseeded else set())
                check(op, who, status, allowed | ({422} if op.has_body else set()))
            else:
                check(op, who, status, {200} if not unseeded else {404})
        if "{project}" in op.path:
            foreign = world.tokens["foreign"]
            check(
                op, "foreign member", _call(service, op, foreign, world.params).status_code, {404}
            )
            if op.id_params:
                theirs = {**world.params, "project": world.foreign_slug}
                status = _call(service, op, foreign, theirs).status_code
                check(
                    op,
                    "foreign member, own slug",
                    status,
                    {404} | ({422} if op.has_body else set()),
                )
    assert violations == [], "\n".join(violations)
    assert calls > 400, calls
