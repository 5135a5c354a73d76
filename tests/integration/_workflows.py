"""What the tests read of DBOS: the approval workflows parked in ``recv``, a version's id."""

from __future__ import annotations

from dbos import DBOSClient
from sqlalchemy import select

from certautopilot.certificates.models import CertificateVersion
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.workflows.issuance import APPROVAL_WORKFLOW_NAME, workflow_id
from certautopilot.workflows.launcher import APP_NAME
from tests.conftest import Service


def parked_approvals(service: Service) -> list[str]:
    """The approval workflows waiting in DBOS (PENDING, past the step before ``recv``)."""
    engine = make_engine(service.settings)
    client = DBOSClient(system_database_engine=engine, application_name=APP_NAME)
    try:
        flows = client.list_workflows(name=APPROVAL_WORKFLOW_NAME, status="PENDING")
        steps = {f.workflow_id: client.list_workflow_steps(f.workflow_id) for f in flows}
        parked = "approval.seconds_left"  # then it waits in recv
        return [wf for wf, done in steps.items() if any(s["function_name"] == parked for s in done)]
    finally:
        client.destroy()
        engine.dispose()


def version_id(service: Service, cert_id: str) -> str:
    """The id of the certificate's first version."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return session.scalars(
                select(CertificateVersion.id).where(CertificateVersion.certificate_id == cert_id)
            ).one()
    finally:
        engine.dispose()


def is_parked(service: Service, cert_id: str) -> bool:
    """The certificate's approval workflow has been picked up and waits for the decision."""
    return workflow_id(version_id(service, cert_id)) in parked_approvals(service)
