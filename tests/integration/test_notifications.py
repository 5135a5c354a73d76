"""Notifications through a real SMTP server (aiosmtpd) and a real webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from certautopilot.lab.info import LabInfo
from certautopilot.lab.ports import free_port
from tests.conftest import Service, create_project

SECRET = "webhook-signing-secret-0123456789"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "headers": dict(self.headers)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()


def _wait(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_approvers_and_requester_are_notified(
    service: Service,
    lab: LabInfo,
    smtp: tuple[int, _Inbox],
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

    _wait(lambda: len(inbox.messages) > before)
    rcpts, mail = inbox.messages[before]
    assert set(rcpts) == {f"ap@{p}.test", "admin@example.test"}
    assert "Approval needed" in mail["Subject"]
    text = mail.get_payload(decode=True).decode()
    assert f"/projects/{p}/requests/{request_id}" in text and "note.example.test" in text
    _wait(lambda: any(b"request.created" in r["body"] for r in received))
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
    _wait(
        lambda: any(r == [f"op@{p}.test"] and "approved" in m["Subject"] for r, m in inbox.messages)
    )
    service.wait_for(p, created["id"], ("issued",))
    for r in received:
        assert SECRET.encode() not in r["body"]


def test_failing_channel_is_visible_and_never_blocks_issuance(
    service: Service, lab: LabInfo, smtp: tuple[int, _Inbox]
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
    service.ok(
        "POST",
        f"/projects/{p}/zones",
        201,
        json={
            "name": "refused.example.test",
            "provider": "rfc2136",
            "nameservers": [f"127.0.0.1:{lab.dns_port}"],
            "rfc2136": {
                "server": "127.0.0.1",
                "port": lab.dns_port,
                "tsig_name": lab.tsig_name,
                "tsig_secret": "d3JvbmctYnV0LWJhc2U2NC1zZWNyZXQtdmFsdWUtMzI=",
            },
        },
    )
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
    _wait(
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
