"""A deployment that fails for good (after its retries) is sent to the project's admins
through the notification channels - a real SMTP server (aiosmtpd) and a real webhook
receiver - once per failed target, not per attempt; the other target is deployed anyway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.notifications.models import Notification
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project
from tests.integration import distribution_servers as ds
from tests.integration._receivers import Inbox, smtp_server, wait_until, webhook_receiver

TARGET_SECRET = "whsec-notify-0123456789abcdef-0123"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as found:
        yield found


@pytest.fixture
def chat() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    with webhook_receiver() as found:
        yield found


def test_final_distribution_failure_reaches_the_admins(
    service: Service,
    lab: LabInfo,
    tmp_path: Path,
    smtp: tuple[int, Inbox],
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

        wait_until(lambda: len(finished()) == 2, timeout=60)
        assert finished() == {"good": "succeeded", "dead": "failed"}  # never blocked

    engine = make_engine(service.settings)

    def outbox() -> list[str]:
        with transaction(make_sessionmaker(engine)) as session:
            return list(
                session.scalars(
                    select(Notification.status).where(
                        Notification.certificate_id == cid,
                        Notification.event == "cert.distribution_failed",
                    )
                )
            )

    try:
        # Every message of the failure has been delivered (the outbox says so): whatever the
        # inbox and the receiver hold now is all that comes.
        wait_until(lambda: outbox() == ["sent", "sent"], timeout=30)
    finally:
        engine.dispose()
    assert len(inbox.messages) == 1 and len(received) == 1  # one per channel, not per attempt
    rcpt, mail = inbox.messages[0]
    assert sorted(rcpt) == sorted(["admin@example.test", f"second-admin@{p}.test"])  # admins only
    assert mail["Subject"] == "Deploying notify.example.test to dead failed"
    text = mail.get_payload(decode=True).decode()
    assert "tried 2 times" in text and f"127.0.0.1:{dead_port}" in text
    assert f"/p/{p}/certificates/{cid}" in text
    assert TARGET_SECRET not in text
    hook = json.loads(received[0]["body"])
    assert hook["event"] == "cert.distribution_failed" and "dead" in hook["text"]
    assert TARGET_SECRET not in json.dumps(hook)
