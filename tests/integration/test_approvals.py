"""Approval workflow: requests, self-approval blocked, approve/reject, restart, expiry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from certautopilot.approvals.models import ApprovalRequest
from certautopilot.clock import utcnow
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project
from tests.integration._receivers import wait_until
from tests.integration._workflows import is_parked
from tests.integration.test_rate_budget import _orders_logged


def _team(service: Service, lab: LabInfo) -> tuple[str, str, dict[str, str]]:
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    tokens = {}
    for who, role in (("op", "operator"), ("approver", "approver"), ("viewer", "viewer")):
        email = f"{who}-{p}@example.test"
        service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": role})
        tokens[who] = service.token_for(email)
    return p, project.issuer_id, tokens


def _submit(service: Service, p: str, issuer: str, token: str, name: str) -> dict[str, object]:
    body: dict[str, object] = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        token=token,
        json={"issuer": issuer, "common_name": name},
    )
    return body


def test_approval_by_another_user_issues(service: Service, lab: LabInfo) -> None:
    p, issuer, tokens = _team(service, lab)
    created = _submit(service, p, issuer, tokens["op"], "approve-me.example.test")
    assert created["status"] == "awaiting_approval"
    request_id = created["approval_request"]["id"]  # type: ignore[index]
    wait_until(lambda: is_parked(service, str(created["id"])), timeout=30)
    assert (
        service.ok("GET", f"/projects/{p}/certificates/{created['id']}")["status"]
        == "awaiting_approval"
    )  # nothing issued without a decision
    assert _orders_logged(service, str(created["id"])) == 0  # no order yet: not counted

    pending = service.ok("GET", f"/projects/{p}/requests", params={"status": "pending"})["items"]
    assert [r["id"] for r in pending] == [request_id]
    mine = service.ok("GET", f"/projects/{p}/requests/{request_id}", token=tokens["op"])
    assert mine["can_decide"] is False and "self-approval" in mine["cannot_decide_reason"]
    assert mine["request"]["sans"] == ["approve-me.example.test"]

    own = service.call(
        "POST", f"/projects/{p}/requests/{request_id}/approve", token=tokens["op"], json={}
    )
    assert own.status_code == 403 and "self-approval" in own.json()["detail"]
    viewer = service.call(
        "POST", f"/projects/{p}/requests/{request_id}/approve", token=tokens["viewer"], json={}
    )
    assert viewer.status_code == 403

    decided = service.ok(
        "POST",
        f"/projects/{p}/requests/{request_id}/approve",
        token=tokens["approver"],
        json={"comment": "ok for prod"},
    )
    assert decided["status"] == "approved" and decided["decided_by"].startswith("approver-")
    issued = service.wait_for(p, created["id"], ("issued", "failed"))  # type: ignore[arg-type]
    assert issued["status"] == "issued", issued["error"]
    assert _orders_logged(service, str(created["id"])) == 1  # counted when it was ordered
    again = service.call(
        "POST",
        f"/projects/{p}/requests/{request_id}/reject",
        token=tokens["approver"],
        json={"comment": "too late"},
    )
    assert again.status_code == 409
    types = [e["type"] for e in service.timeline(p, created["id"])["events"]]  # type: ignore[arg-type]
    assert (
        types.index("request.created")
        < types.index("request.approved")
        < types.index("cert.issued")
    )


def test_admin_requester_cannot_approve_own_request(service: Service, lab: LabInfo) -> None:
    p, issuer, _ = _team(service, lab)
    created = _submit(service, p, issuer, service.admin_token, "admin-own.example.test")
    request_id = created["approval_request"]["id"]  # type: ignore[index]
    own = service.call("POST", f"/projects/{p}/requests/{request_id}/approve", json={})
    assert own.status_code == 403 and "self-approval" in own.json()["detail"]


def test_rejection_needs_a_comment_and_ends_the_request(service: Service, lab: LabInfo) -> None:
    p, issuer, tokens = _team(service, lab)
    created = _submit(service, p, issuer, tokens["op"], "reject-me.example.test")
    request_id = created["approval_request"]["id"]  # type: ignore[index]
    no_comment = service.call(
        "POST",
        f"/projects/{p}/requests/{request_id}/reject",
        token=tokens["approver"],
        json={"comment": ""},
    )
    assert no_comment.status_code == 422
    assert no_comment.json()["errors"][0]["field"] == "comment"
    service.ok(
        "POST",
        f"/projects/{p}/requests/{request_id}/reject",
        token=tokens["approver"],
        json={"comment": "use the wildcard we already have"},
    )
    body = service.wait_for(p, created["id"], ("rejected",))  # type: ignore[arg-type]
    assert body["error"]["detail"] == "use the wildcard we already have"
    events = service.timeline(p, created["id"])["events"]  # type: ignore[arg-type]
    rejected = next(e for e in events if e["type"] == "request.rejected")
    assert rejected["detail"]["comment"] == "use the wildcard we already have"
    assert "cert.issued" not in [e["type"] for e in events]


def test_approval_wait_survives_worker_sigkill(service: Service, lab: LabInfo) -> None:
    p, issuer, tokens = _team(service, lab)
    created = _submit(service, p, issuer, tokens["op"], "restart.example.test")
    request_id = created["approval_request"]["id"]  # type: ignore[index]
    wait_until(lambda: is_parked(service, str(created["id"])), timeout=30)  # waits in recv
    service.kill_worker()
    service.start_worker()
    service.ok(
        "POST", f"/projects/{p}/requests/{request_id}/approve", token=tokens["approver"], json={}
    )
    body = service.wait_for(p, created["id"], ("issued", "failed"), timeout=90)  # type: ignore[arg-type]
    assert body["status"] == "issued", body["error"]


def test_undecided_request_expires(service: Service, lab: LabInfo) -> None:
    p, issuer, tokens = _team(service, lab)
    created = _submit(service, p, issuer, tokens["op"], "expire.example.test")
    request_id = created["approval_request"]["id"]  # type: ignore[index]
    engine = make_engine(service.settings)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        version_id = session.get(ApprovalRequest, request_id).version_id  # type: ignore[union-attr]
    engine.dispose()
    late = service.call(
        "POST", f"/projects/{p}/requests/{request_id}/approve", token=tokens["approver"], json={}
    )
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    # The waiting workflow re-reads the request when woken (or at the latest hourly).
    service.client.app.state.cap.launcher.decided(version_id, "pending")  # type: ignore[attr-defined]
    body = service.wait_for(p, created["id"], ("rejected",))  # type: ignore[arg-type]
    assert body["error"]["title"] == "Request expired"
    request = service.ok("GET", f"/projects/{p}/requests/{request_id}")
    assert request["status"] == "expired"


def test_approving_a_request_whose_issuer_was_disabled_since_is_refused(
    service: Service, lab: LabInfo
) -> None:
    """Disabling an issuer also holds the requests already waiting for it: approving one is
    a 409 that says why (nothing ordered), rejecting still works, and once the issuer is
    enabled again the request is approved and issues."""
    p, issuer, tokens = _team(service, lab)
    held = _submit(service, p, issuer, tokens["op"], "held.example.test")
    rejected = _submit(service, p, issuer, tokens["op"], "dropped.example.test")
    held_id = held["approval_request"]["id"]  # type: ignore[index]
    rejected_id = rejected["approval_request"]["id"]  # type: ignore[index]
    service.ok("PATCH", f"/projects/{p}/issuers/{issuer}", json={"enabled": False})

    refused = service.call(
        "POST", f"/projects/{p}/requests/{held_id}/approve", token=tokens["approver"], json={}
    )
    assert refused.status_code == 409, refused.text
    assert "was disabled after this request was made" in refused.json()["detail"]
    still = service.ok("GET", f"/projects/{p}/requests/{held_id}", token=tokens["approver"])
    assert still["status"] == "pending"
    assert _orders_logged(service, str(held["id"])) == 0
    service.ok(
        "POST",
        f"/projects/{p}/requests/{rejected_id}/reject",
        token=tokens["approver"],
        json={"comment": "issuer retired"},
    )

    service.ok("PATCH", f"/projects/{p}/issuers/{issuer}", json={"enabled": True})
    decided = service.ok(
        "POST", f"/projects/{p}/requests/{held_id}/approve", token=tokens["approver"], json={}
    )
    assert decided["status"] == "approved"
    issued = service.wait_for(p, str(held["id"]), ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]


def test_approving_a_request_whose_zone_was_disabled_since_is_refused(
    service: Service, lab: LabInfo
) -> None:
    """A zone disabled while a request waits: approving it is a 409 naming the zone (no
    order, no record), and once the zone is enabled again it is approved and issues."""
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    email = f"op-{p}@example.test"
    service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": "operator"})
    held = _submit(service, p, project.issuer_id, service.token_for(email), "zoned.example.test")
    held_id = held["approval_request"]["id"]  # type: ignore[index]
    zone = f"/projects/{p}/zones/{project.zone_ids['example.test']}"
    service.ok("PATCH", zone, json={"enabled": False})

    refused = service.call("POST", f"/projects/{p}/requests/{held_id}/approve", json={})
    assert refused.status_code == 409, refused.text
    assert "zone example.test was disabled after this request" in refused.json()["detail"]
    assert service.ok("GET", f"/projects/{p}/requests/{held_id}")["status"] == "pending"
    assert _orders_logged(service, str(held["id"])) == 0

    service.ok("PATCH", zone, json={"enabled": True})
    decided = service.ok("POST", f"/projects/{p}/requests/{held_id}/approve", json={})
    assert decided["status"] == "approved"
    issued = service.wait_for(p, str(held["id"]), ("issued", "failed"))
    assert issued["status"] == "issued", issued["error"]
