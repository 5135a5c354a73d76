"""The API's side of DBOS: enqueue issuance in the caller's transaction, send human replies."""

from __future__ import annotations

from typing import Any

from dbos import DBOS, DBOSClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from certautopilot.config import Settings
from certautopilot.db.session import system_database_url
from certautopilot.workflows import notify
from certautopilot.workflows.adcs_steps import CA_CHECK
from certautopilot.workflows.issuance import (
    APPROVAL,
    APPROVAL_WORKFLOW_NAME,
    DNS_CONFIRMED,
    QUEUE,
    WORKFLOW_NAME,
    workflow_id,
)

APP_NAME = "certautopilot"


def migrate_system_database(settings: Settings) -> None:
    DBOS.migrate(system_database_url(settings))


class DbosLauncher:
    def __init__(self, engine: Engine) -> None:
        self.client = DBOSClient(system_database_engine=engine, application_name=APP_NAME)

    def enqueue_issuance(
        self, session: Session, version_id: str, *, approval: bool = False, kind: str = "acme"
    ) -> None:
        """``kind`` is the issuer's kind (acme, adcs): the workflow takes its path at once."""
        self.client.enqueue_in_transaction(
            session,
            {
                "workflow_name": APPROVAL_WORKFLOW_NAME if approval else WORKFLOW_NAME,
                "queue_name": QUEUE,
                "workflow_id": workflow_id(version_id),
            },
            version_id,
            kind,
        )

    def enqueue_notifications(self, session: Session, notification_ids: list[str]) -> None:
        for notification_id in notification_ids:
            self.client.enqueue_in_transaction(
                session,
                {
                    "workflow_name": notify.WORKFLOW_NAME,
                    "queue_name": notify.QUEUE,
                    "workflow_id": notify.workflow_id(notification_id),
                },
                notification_id,
            )

    def decided(self, version_id: str, decision: str) -> None:
        """Wakes a workflow waiting for approval; it reads the decision from the database."""
        self.client.send(workflow_id(version_id), {"decision": decision}, APPROVAL)

    def confirm_dns(self, version_id: str, by: str) -> None:
        message: dict[str, Any] = {"by": by}
        self.client.send(workflow_id(version_id), message, DNS_CONFIRMED)

    def check_ca(self, version_id: str, by: str) -> None:
        """Wakes an AD CS issuance waiting for CA-manager approval: it checks the CA now."""
        message: dict[str, Any] = {"by": by}
        self.client.send(workflow_id(version_id), message, CA_CHECK)

    def close(self) -> None:
        self.client.destroy()
