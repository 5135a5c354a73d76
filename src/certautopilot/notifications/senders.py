"""SMTP and webhook senders: notification channel plugins (``certautopilot.notification_channels``).

Each class carries its config model (the secret field marked with ``secret_field``) and is
built with it; credentials arrive decrypted in memory, never in messages.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from certautopilot.errors import DestinationRefused, InvalidInput, NotificationError
from certautopilot.netguard import check_host, check_url
from certautopilot.notifications.interfaces import Message
from certautopilot.outbound import connect, guarded_transport
from certautopilot.plugins import secret_field


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    host: str = Field(min_length=1, max_length=253, description="SMTP server")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=320)
    password: str | None = secret_field(default=None, max_length=1000, repr=False)
    from_addr: str = Field(min_length=3, max_length=320, description="the From address")


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(min_length=8, max_length=1000)
    secret: str | None = secret_field(
        default=None, min_length=16, max_length=500, repr=False, description="HMAC-SHA256 key"
    )


class _GuardedSMTP(smtplib.SMTP):
    """Connects to an address the SSRF guard checked; STARTTLS still verifies the name."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect(host, port, timeout=timeout, source_address=self.source_address)


class _GuardedSMTPSSL(smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = connect(host, port, timeout=timeout, source_address=self.source_address)
        return self.context.wrap_socket(sock, server_hostname=host)


class SmtpSender:
    name: ClassVar[str] = "email"
    title: ClassVar[str] = "Email (SMTP)"
    config_model: ClassVar[type[EmailConfig]] = EmailConfig

    @classmethod
    def validate(cls, config: EmailConfig, field: str) -> None:
        """Save-time rule: the SMTP server is a host the service may reach."""
        check_host(config.host, field=f"{field}.host")

    def __init__(self, config: EmailConfig, timeout: float = 10) -> None:
        self.config = config
        self.timeout = timeout

    def send(self, message: Message) -> None:
        if not message.recipients:
            return
        mail = EmailMessage()
        mail["From"] = self.config.from_addr
        mail["To"] = ", ".join(message.recipients)
        mail["Subject"] = message.subject
        body = message.text + (f"\n\n{message.link}\n" if message.link else "\n")
        mail.set_content(body)
        host, port, security = self.config.host, self.config.port, self.config.security
        try:
            if security == "tls":
                client: smtplib.SMTP = _GuardedSMTPSSL(
                    host, port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = _GuardedSMTP(host, port, timeout=self.timeout)
            with client:
                if security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.config.username:
                    client.login(self.config.username, self.config.password or "")
                client.send_message(mail)
        except DestinationRefused as exc:
            raise NotificationError(f"SMTP {host}:{port}: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise NotificationError(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}") from exc


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default trust, loaded once (about 30 ms of CPU each time otherwise)."""
    return httpx.create_ssl_context()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    """POSTs JSON with a Slack-compatible ``text``; signed with HMAC-SHA256 over
    ``<timestamp>.<body>`` in ``X-CertAutoPilot-Signature`` when a secret is set."""

    name: ClassVar[str] = "webhook"
    title: ClassVar[str] = "Webhook (Slack-compatible JSON, signed)"
    config_model: ClassVar[type[WebhookConfig]] = WebhookConfig

    @classmethod
    def validate(cls, config: WebhookConfig, field: str) -> None:
        """Save-time rule: a URL the service may reach (http allowed, as for chat hooks)."""
        check_url(config.url, field=f"{field}.url", require_https=False)

    def __init__(self, config: WebhookConfig, timeout: float = 10) -> None:
        self.url = config.url
        self.secret = config.secret
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
            with httpx.Client(
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
                transport=guarded_transport(verify=_tls_context()),
            ) as client:
                response = client.post(self.url, content=body, headers=headers)
        except DestinationRefused as exc:
            raise NotificationError(f"webhook destination refused: {exc}") from exc
        except httpx.HTTPError as exc:
            raise NotificationError(f"webhook {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise NotificationError(f"webhook {self.url} answered {response.status_code}")
