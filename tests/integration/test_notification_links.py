"""Every link in a notification opens its page for a signed-in member of the project.

A real SMTP server (aiosmtpd) and a real webhook receiver take the notifications; the
links are pulled from the email body and the webhook JSON, and a web session signed in
through the login form GETs each one: 200, and the page names the certificate.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from certautopilot.auth import service as auth
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, add_refused_zone, create_project
from tests.integration._receivers import Inbox, wait_until

PASSWORD = "correct horse battery"
URL = re.compile(r"https?://[^\s<>\"')]+")


def _channels(service: Service, slug: str, smtp_port: int, hook_port: int) -> None:
    service.ok(
        "POST",
        f"/projects/{slug}/notification-channels",
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
    service.ok(
        "POST",
        f"/projects/{slug}/notification-channels",
        201,
        json={
            "name": "chat",
            "kind": "webhook",
            "webhook": {"url": f"http://127.0.0.1:{hook_port}/hook"},
        },
    )


def _browser_for(service: Service, slug: str, email: str) -> TestClient:
    """A viewer of ``slug``, signed in through the login form (own cookie jar)."""
    service.ok("POST", f"/projects/{slug}/members", 201, json={"email": email, "role": "viewer"})
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            auth.set_password(auth.ensure_user(session, email=email), PASSWORD)
    finally:
        engine.dispose()
    web = TestClient(service.client.app)  # the running app; no second lifespan
    form = web.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and csrf
    signed = web.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf": csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    return web


def _links(mail_text: str, hook_body: bytes) -> list[str]:
    payload = json.loads(hook_body)
    found = URL.findall(mail_text) + URL.findall(payload["text"])
    if payload.get("link"):
        found.append(payload["link"])
    return sorted(set(found))


def _follow(service: Service, web: TestClient, links: list[str], *, shows: str) -> None:
    assert links, "the notification carries no link"
    public = service.settings.public_url.rstrip("/")
    for link in links:
        assert link.startswith(public + "/"), link
        parts = urlsplit(link)
        page = web.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        assert page.status_code == 200, f"{link} -> {page.status_code}"
        assert shows in page.text, f"{link} does not show {shows}"


def _mail_to(inbox: Inbox, email: str, subject: str) -> str:
    wait_until(lambda: any(email in r and subject in m["Subject"] for r, m in inbox.messages))
    mail = next(m for r, m in inbox.messages if email in r and subject in m["Subject"])
    text: str = mail.get_payload(decode=True).decode()
    return text


def _hook(received: list[dict[str, Any]], event: str, certificate_id: str) -> bytes:
    def match(r: dict[str, Any]) -> bool:
        body = json.loads(r["body"])
        return bool(body["event"] == event and certificate_id in (body.get("link") or ""))

    wait_until(lambda: any(match(r) for r in received))
    body: bytes = next(r for r in received if match(r))["body"]
    return body


def test_approval_request_links_open_the_request(
    service: Service,
    lab: LabInfo,
    smtp: tuple[int, Inbox],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    (smtp_port, inbox), (hook_port, received) = smtp, webhook
    slug = create_project(service, lab, manual_zone=False).slug
    issuer = service.ok("GET", f"/projects/{slug}/issuers")[0]["id"]
    _channels(service, slug, smtp_port, hook_port)
    service.ok("PUT", f"/projects/{slug}/policy", json={"approval_required": True})
    service.ok(
        "POST",
        f"/projects/{slug}/members",
        201,
        json={"email": f"ap@{slug}.test", "role": "approver"},
    )
    created = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer, "common_name": "linked.example.test"},
    )
    request_id = created["approval_request"]["id"]
    text = _mail_to(inbox, f"ap@{slug}.test", "Approval needed")
    wait_until(lambda: any(request_id in r["body"].decode() for r in received))
    hook = next(r for r in received if request_id in r["body"].decode())["body"]
    links = _links(text, hook)
    assert any(urlsplit(u).path == f"/p/{slug}/requests/{request_id}" for u in links), links
    web = _browser_for(service, slug, f"viewer@{slug}.test")
    _follow(service, web, links, shows="linked.example.test")
    page = web.get(urlsplit(links[0]).path)
    assert f'data-request-id="{request_id}"' in page.text


def test_failure_links_open_the_certificate(
    service: Service,
    lab: LabInfo,
    smtp: tuple[int, Inbox],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    (smtp_port, inbox), (hook_port, received) = smtp, webhook
    project = create_project(service, lab, manual_zone=False)
    slug = project.slug
    _channels(service, slug, smtp_port, hook_port)
    # A zone whose TSIG key BIND refuses: issuance fails and the requester is told.
    add_refused_zone(service, lab, slug, "refused.example.test")
    # A name of this test's own: the module's mail receiver also holds other runs' mail.
    name = f"broken-{uuid.uuid4().hex[:6]}.refused.example.test"
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name},
    )
    assert service.wait_for(slug, cert["id"], ("failed",))["status"] == "failed"
    text = _mail_to(inbox, "admin@example.test", f"{name} failed")
    links = _links(text, _hook(received, "cert.failed", cert["id"]))
    assert any(urlsplit(u).path == f"/p/{slug}/certificates/{cert['id']}" for u in links), links
    web = _browser_for(service, slug, f"viewer@{slug}.test")
    _follow(service, web, links, shows=name)
