"""Small helpers the steps share: a transaction, loading a version, timeline events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.db.session import transaction
from certautopilot.errors import NotFound
from certautopilot.workflows import logcontext
from certautopilot.workflows.runtime import runtime

SYSTEM = audit.SYSTEM_ACTOR


@contextmanager
def tx() -> Iterator[Session]:
    with transaction(runtime().sessions) as session:
        yield session


def load(session: Session, version_id: str) -> tuple[CertificateVersion, Certificate]:
    """The version and its certificate, in one query."""
    row = session.execute(
        select(CertificateVersion, Certificate)
        .join(Certificate, Certificate.id == CertificateVersion.certificate_id)
        .where(CertificateVersion.id == version_id)
    ).first()
    if row is None:
        raise NotFound(f"certificate version {version_id} does not exist")
    logcontext.remember_certificate(row[1].id)
    return row[0], row[1]


def record_event(
    session: Session,
    cert: Certificate,
    type: EventType,
    detail: dict[str, Any],
    *,
    actor: str = SYSTEM,
    at: datetime | None = None,
) -> None:
    audit.record(
        session,
        type=type,
        actor=actor,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail=detail,
        at=at,
    )


def set_step(session: Session, cert: Certificate, step: str | None) -> None:
    cert.step = step
