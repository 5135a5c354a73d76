"""SMTP and webhook senders. Credentials arrive decrypted in memory, never in messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

import httpx

from certautopilot.errors import InvalidInput, NotificationError
from certautopilot.netguard import check_url
from certautopilot.notifications.interfaces import Message


class SmtpSender:
    def __init__(self, config: dict[str, Any], password: str | None, timeout: float = 10) -> None:
        self.config = config
        self.password = password
        self.timeout = timeout

    def send(self, message: Message) -> None:
        if not message.recipients:
            return
        mail = EmailMessage()
        mail["From"] = self.config["from_addr"]
        mail["To"] = ", ".join(message.recipients)
        mail["Subject"] = message.subject
        body = message.text + (f"\n\n{message.link}\n" if message.link else "\n")
        mail.set_content(body)
        host, port, security = (
            self.config["host"],
            int(self.config["port"]),
            self.config["security"],
        )
        try:
            if security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(host, port, timeout=self.timeout)
            with client:
                if security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.config.get("username"):
                    client.login(self.config["username"], self.password or "")
                client.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotificationError(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}") from exc


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    """POSTs JSON with a Slack-compatible ``text``; signed with HMAC-SHA256 over
    ``<timestamp>.<body>`` in ``X-CertAutoPilot-Signature`` when a secret is set."""

    def __init__(self, config: dict[str, Any], secret: str | None, timeout: float = 10) -> None:
        self.url = str(config["url"])
        self.secret = secret
        self.timeout = timeout

    def send(self, message: Message) -> None:
        try:
            check_url(self.url, field="webhook.url", require_https=False)
        except InvalidInput as exc:
            # Checked again at send time (DNS may have changed since the channel was saved);
            # the Sender contract is NotificationError, so the notification is marked failed.
            raise NotificationError(f"webhook destination refused: {exc}") from exc
        payload = {
            "text": f"{message.subject}\n{message.text}"
            + (f"\n<{message.link}>" if message.link else ""),
            "event": message.event,
            "project_id": message.project_id,
            "certificate_id": message.certificate_id,
            "link": message.link,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-CertAutoPilot-Timestamp": timestamp}
        if self.secret:
            headers["X-CertAutoPilot-Signature"] = signature(self.secret, timestamp, body)
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise NotificationError(f"webhook {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise NotificationError(f"webhook {self.url} answered {response.status_code}")
