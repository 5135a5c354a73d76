"""A deployment that fails for good (after its retries) is sent to the project's admins
through the notification channels - a real SMTP server (aiosmtpd) and a real webhook
receiver - once per failed target, not per attempt; the other target is deployed anyway."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.lab.info import LabInfo
from certautopilot.lab.ports import free_port
from certautopilot.notifications.models import Notification
from tests.conftest import Service, create_project
from tests.integration import distribution_servers as ds

TARGET_SECRET = "whsec-notify-0123456789abcdef-0123"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((sorted(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox, port = _Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture
def chat() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], received
    server.shutdown()


def _wait(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_final_distribution_failure_reaches_the_admins(
    service: Service,
    lab: LabInfo,
    tmp_path: Path,
    smtp: tuple[int, _Inbox],
    chat: tuple[int, list[dict[str, Any]]],
) -> None:
    (smtp_port, inbox), (chat_port, received) = smtp, chat
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    for name, kind, settings in (
        (
            "mail",
            "email",
            {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_addr": "certautopilot@example.test",
            },
        ),
        ("chat", "webhook", {"url": f"http://127.0.0.1:{chat_port}/hook", "secret": "s" * 20}),
    ):
        service.ok(
            "POST",
            f"/projects/{p}/notification-channels",
            201,
            json={"name": name, "kind": kind, kind: settings},
        )
    members = {f"second-admin@{p}.test": "admin", f"op@{p}.test": "operator"}
    for email, role in members.items():
        service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": role})

    cert_pem, key_pem = ds.self_signed("127.0.0.1")
    (tmp_path / "hook.pem").write_text(cert_pem)
    (tmp_path / "hook.key").write_text(key_pem)
    receiver = ds.WebhookReceiver()
    dead_port = ds.free_port(udp=False)
    with ds.http_server(receiver.handle, tls=(tmp_path / "hook.pem", tmp_path / "hook.key")) as hp:
        ids = [
            service.ok("POST", f"/projects/{p}/targets", 201, json=body)["id"]
            for body in (
                {
                    "name": "good",
                    "kind": "webhook",
                    "webhook": {
                        "url": f"https://127.0.0.1:{hp}/good",
                        "secret": TARGET_SECRET,
                        "ca_bundle_pem": cert_pem,
                    },
                },
                {
                    "name": "dead",
                    "kind": "webhook",
                    "retry": {"max_attempts": 2, "delay_seconds": 0.2, "backoff": 1},
                    "webhook": {
                        "url": f"https://127.0.0.1:{dead_port}/hook",
                        "secret": TARGET_SECRET,
                        "timeout_seconds": 2,
                    },
                },
            )
        ]
        created = service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={
                "issuer": project.issuer_id,
                "common_name": "notify.example.test",
                "distribution_targets": ids,
            },
        )
        cid = created["id"]
        issued = service.wait_for(p, cid, ("issued", "failed"))
        assert issued["status"] == "issued", issued["error"]

        def finished() -> dict[str, str]:
            body = service.ok("GET", f"/projects/{p}/certificates/{cid}/deployments")
            return {
                i["target"]["name"]: i["latest"]["status"]
                for i in body["items"]
                if i["latest"] and i["latest"]["status"] in ("succeeded", "failed")
            }

        _wait(lambda: len(finished()) == 2, timeout=60)
        assert finished() == {"good": "succeeded", "dead": "failed"}  # never blocked

    _wait(lambda: inbox.messages and received)
    time.sleep(1.0)  # nothing more comes: one message per channel, not one per attempt
    assert len(inbox.messages) == 1 and len(received) == 1
    rcpt, mail = inbox.messages[0]
    assert rcpt == sorted(["admin@example.test", f"second-admin@{p}.test"])  # admins only
    assert mail["Subject"] == "Deploying notify.example.test to dead failed"
    text = mail.get_payload(decode=True).decode()
    assert "tried 2 times" in text and f"127.0.0.1:{dead_port}" in text
    assert f"/projects/{p}/certificates/{cid}" in text
    assert TARGET_SECRET not in text
    hook = received[0]
    assert hook["event"] == "cert.distribution_failed" and "dead" in hook["text"]
    assert TARGET_SECRET not in json.dumps(hook)

    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            rows = session.scalars(
                select(Notification).where(
                    Notification.certificate_id == cid,
                    Notification.event == "cert.distribution_failed",
                )
            ).all()
            assert len(rows) == 2  # one outbox row per channel
    finally:
        engine.dispose()
