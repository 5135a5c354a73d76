"""Imports every domain's models so that metadata (and Alembic) sees all tables."""

from certautopilot.approvals.models import ApprovalRequest
from certautopilot.audit.models import AuditEvent
from certautopilot.auth.models import ApiToken, Membership, SignInCounter, User, WebSession
from certautopilot.certificates.models import (
    Certificate,
    CertificateExpiryCount,
    CertificateVersion,
    IdempotencyKey,
)
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.base import Base
from certautopilot.distribution.models import CertificateTarget, Deployment, DistributionTarget
from certautopilot.dns.models import DnsZone
from certautopilot.health.models import WorkerHeartbeat
from certautopilot.issuers.adcs.models import AdcsProfile, AdcsRequest
from certautopilot.issuers.models import Issuer
from certautopilot.notifications.models import (
    ExpiryAlertMark,
    ExpiryAlertRule,
    ExpiryDigest,
    Notification,
    NotificationChannel,
)
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
    "CertificateExpiryCount",
    "CertificateTarget",
    "CertificateVersion",
    "Deployment",
    "DistributionTarget",
    "DnsZone",
    "ExpiryAlertMark",
    "ExpiryAlertRule",
    "ExpiryDigest",
    "IdempotencyKey",
    "Issuer",
    "Membership",
    "Notification",
    "NotificationChannel",
    "OrderLog",
    "Project",
    "ProjectPolicy",
    "RenewalState",
    "SignInCounter",
    "StoredSecret",
    "User",
    "WebSession",
    "WorkerHeartbeat",
]
