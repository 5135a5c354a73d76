"""Imports every domain's models so that metadata (and Alembic) sees all tables."""

from certautopilot.approvals.models import ApprovalRequest
from certautopilot.audit.models import AuditEvent
from certautopilot.auth.models import ApiToken, Membership, User
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.base import Base
from certautopilot.distribution.models import CertificateTarget, Deployment, DistributionTarget
from certautopilot.dns.models import DnsZone
from certautopilot.issuers.adcs.models import AdcsProfile, AdcsRequest
from certautopilot.issuers.models import Issuer
from certautopilot.notifications.models import Notification, NotificationChannel
from certautopilot.policy.models import ProjectPolicy
from certautopilot.projects.models import Project
from certautopilot.renewal.models import OrderLog, RenewalState

__all__ = [
    "AdcsProfile",
    "AdcsRequest",
    "ApiToken",
    "ApprovalRequest",
    "AuditEvent",
    "Base",
    "Certificate",
    "CertificateTarget",
    "CertificateVersion",
    "Deployment",
    "DistributionTarget",
    "DnsZone",
    "Issuer",
    "Membership",
    "Notification",
    "NotificationChannel",
    "OrderLog",
    "Project",
    "ProjectPolicy",
    "RenewalState",
    "StoredSecret",
    "User",
]
