"""Notifications through a real SMTP server (aiosmtpd) and a real webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from certautopilot_lab.info import LabInfo
from certautopilot_lab.ports import free_port
from tests.conftest import Service, add_refused_zone, create_project
from tests.integration._receivers import Inbox, wait_until

SECRET = "webhook-signing-secret-0123456789"


def test_approvers_and_requester_are_notified(
    service: Service,
    lab: LabInfo,
    smtp: tuple[int, Inbox],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    smtp_port, inbox = smtp
    hook_port, received = webhook
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    service.ok(
        "POST",
        f"/projects/{p}/notification-channels",
        201,
        json={
            "name": "mail",
            "kind": "email",
            "email": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_addr": "certautopilot@example.test",
            },
        },
    )
    channel = service.ok(
        "POST",
        f"/projects/{p}/notification-channels",
        201,
        json={
            "name": "chat",
            "kind": "webhook",
            "webhook": {"url": f"http://127.0.0.1:{hook_port}/hook", "secret": SECRET},
        },
    )
    assert channel["has_secret"] is True and SECRET not in json.dumps(channel)
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    for email, role in ((f"op@{p}.test", "operator"), (f"ap@{p}.test", "approver")):
        service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": role})
    before = len(inbox.messages)
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        token=service.token_for(f"op@{p}.test"),
        json={"issuer": project.issuer_id, "common_name": "note.example.test"},
    )
    request_id = created["approval_request"]["id"]

    wait_until(lambda: len(inbox.messages) > before)
    rcpts, mail = inbox.messages[before]
    assert set(rcpts) == {f"ap@{p}.test", "admin@example.test"}
    assert "Approval needed" in mail["Subject"]
    text = mail.get_payload(decode=True).decode()
    assert f"/p/{p}/requests/{request_id}" in text and "note.example.test" in text
    wait_until(lambda: any(b"request.created" in r["body"] for r in received))
    hook = next(r for r in received if b"request.created" in r["body"])
    payload = json.loads(hook["body"])
    assert "note.example.test" in payload["text"]
    expected = (
        "sha256="
        + hmac.new(
            SECRET.encode(),
            hook["headers"]["X-CertAutoPilot-Timestamp"].encode() + b"." + hook["body"],
            hashlib.sha256,
        ).hexdigest()
    )
    assert hook["headers"]["X-CertAutoPilot-Signature"] == expected

    service.ok(
        "POST",
        f"/projects/{p}/requests/{request_id}/approve",
        token=service.token_for(f"ap@{p}.test"),
        json={"comment": "fine"},
    )
    wait_until(
        lambda: any(r == [f"op@{p}.test"] and "approved" in m["Subject"] for r, m in inbox.messages)
    )
    service.wait_for(p, created["id"], ("issued",))
    for r in received:
        assert SECRET.encode() not in r["body"]


def test_failing_channel_is_visible_and_never_blocks_issuance(
    service: Service, lab: LabInfo, smtp: tuple[int, Inbox]
) -> None:
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    service.ok(
        "POST",
        f"/projects/{p}/notification-channels",
        201,
        json={
            "name": "dead-mail",
            "kind": "email",
            "email": {
                "host": "127.0.0.1",
                "port": free_port(),
                "security": "none",
                "from_addr": "certautopilot@example.test",
            },
        },
    )
    # A failure notification: a zone whose TSIG key BIND refuses makes issuance fail.
    add_refused_zone(service, lab, p, "refused.example.test")
    failing = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "x.refused.example.test"},
    )
    ok = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "fine.example.test"},
    )
    assert service.wait_for(p, ok["id"], ("issued", "failed"))["status"] == "issued"
    assert service.wait_for(p, failing["id"], ("failed",))["status"] == "failed"
    wait_until(
        lambda: (
            "notification.failed"
            in [e["type"] for e in service.timeline(p, failing["id"])["events"]]
        )
    )
    event = next(
        e
        for e in service.timeline(p, failing["id"])["events"]
        if e["type"] == "notification.failed"
    )
    assert event["detail"]["channel"] == "dead-mail" and "SMTP" in event["detail"]["error"]
