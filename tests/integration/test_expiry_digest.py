"""Expiry alerts for every certificate, managed or imported (issue 16, item 6): one digest
per channel per day, delivered through the real SMTP server and webhook receiver the
notification tests use, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.renewal import digest
from certautopilot.workflows.launcher import DbosLauncher
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project, issue_one
from tests.integration._receivers import Inbox, wait_until
from tests.integration.test_imports import NOW, file, make_ca, make_leaf, pem


def _run_digest(service: Service, now: Any) -> int:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return digest.send_digests(
                session, now=now, launcher=DbosLauncher(engine), public_url="https://cap.test"
            )
    finally:
        engine.dispose()


def test_one_digest_per_channel_per_day_for_managed_and_imported(
    service: Service,
    lab: LabInfo,
    smtp: tuple[int, Inbox],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    smtp_port, inbox = smtp
    hook_port, received = webhook
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    managed_id = issue_one(service, project, f"dg-{uuid.uuid4().hex[:6]}.example.test")
    managed = service.ok("GET", f"/projects/{p}/certificates/{managed_id}")
    # the digest's day: three days before the managed certificate expires
    now = datetime.fromisoformat(managed["current"]["not_after"]) - timedelta(days=3)
    ca = make_ca()
    soon, _ = make_leaf(ca, ["soon.dg.test"], days=int((now - NOW).days) + 10)
    later, _ = make_leaf(ca, ["later.dg.test"], days=int((now - NOW).days) + 200)
    imported = service.ok(
        "POST",
        f"/projects/{p}/imports",
        json={"files": [file("a.pem", pem(soon)), file("b.pem", pem(later))]},
    )["imported"]
    assert len(imported) == 2
    assert service.ok("GET", f"/projects/{p}/expiry-alerts") == {
        "thresholds_days": [30, 14, 7, 1],
        "enabled": True,
    }
    bad = service.call("PUT", f"/projects/{p}/expiry-alerts", json={"thresholds_days": [0]})
    assert bad.status_code == 422 and "thresholds_days" in bad.json()["errors"][0]["field"]
    service.ok("PUT", f"/projects/{p}/expiry-alerts", json={"thresholds_days": [60, 14, 5]})
    for body in (
        {
            "name": "mail",
            "kind": "email",
            "email": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_addr": "certautopilot@example.test",
            },
        },
        {"name": "chat", "kind": "webhook", "webhook": {"url": f"http://127.0.0.1:{hook_port}/d"}},
    ):
        service.ok("POST", f"/projects/{p}/notification-channels", 201, json=body)
    mails_before, hooks_before = len(inbox.messages), len(received)
    assert _run_digest(service, now) >= 1

    def ours_mail() -> list[Any]:
        return [
            m
            for _, m in inbox.messages[mails_before:]
            if p in m["Subject"] or "soon.dg.test" in m.get_payload(decode=True).decode()
        ]

    def ours_hooks() -> list[Any]:
        return [r for r in received[hooks_before:] if b"soon.dg.test" in r["body"]]

    wait_until(lambda: ours_mail() and ours_hooks())
    [mail] = ours_mail()
    text = mail.get_payload(decode=True).decode()
    assert "2 certificate(s)" in text
    assert managed["common_name"] in text and "soon.dg.test" in text
    assert "later.dg.test" not in text  # 200 days away: beyond every threshold
    assert "imported, not renewed by CertAutoPilot" in text
    [hook] = ours_hooks()
    assert json.loads(hook["body"])["event"] == "cert.expiry_digest"
    # a second tick that day sends nothing more; the next day, nothing new crossed
    assert _run_digest(service, now + timedelta(hours=2)) == 0
    assert _run_digest(service, now + timedelta(days=1)) == 0
    # five days on, the managed certificate has expired; the imported one (10 days left at
    # ``now``) crosses the 5-day threshold: that day's digest lists it alone
    later_day = now + timedelta(days=5, hours=1)
    mails_before = len(inbox.messages)
    assert _run_digest(service, later_day) == 1
    wait_until(lambda: len(ours_mail()) == 1)
    again = ours_mail()[0].get_payload(decode=True).decode()
    assert "1 certificate(s)" in again and "soon.dg.test" in again
