"""Every audit event type, in one registry.

A type is ``<subject>.<what happened>`` in dotted lower case (``cert.issued``,
``dns.record.published``). The timeline, the notification channels' event filters and the
tests read these names, so they never change once released; add a member here before
writing a new type. Some are notification events as well (``cert.failed``,
``renewal.failed``, ``request.approved``...).
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    ACME_AUTHORIZATIONS_VALID = "acme.authorizations.valid"
    ACME_ORDER_CREATED = "acme.order.created"
    ADCS_CHECK_REQUESTED = "adcs.check_requested"
    ADCS_NAMES_MISSING = "adcs.names_missing"
    ADCS_REQUEST_CHECKED = "adcs.request.checked"
    ADCS_REQUEST_DENIED = "adcs.request.denied"
    ADCS_REQUEST_ISSUED = "adcs.request.issued"
    ADCS_REQUEST_PENDING = "adcs.request.pending"
    CERT_DEPLOY_DRY_RUN = "cert.deploy_dry_run"
    CERT_DEPLOY_REQUESTED = "cert.deploy_requested"
    CERT_DISTRIBUTED = "cert.distributed"
    CERT_DISTRIBUTION_FAILED = "cert.distribution_failed"
    CERT_EXPIRY_WARNING = "cert.expiry_warning"
    CERT_FAILED = "cert.failed"
    CERT_ISSUED = "cert.issued"
    CERT_RENEWAL_REQUESTED = "cert.renewal_requested"
    CERT_RENEWAL_STARTED = "cert.renewal_started"
    CERT_RENEWED = "cert.renewed"
    CERT_REQUESTED = "cert.requested"
    CERT_REVOKED = "cert.revoked"
    CERT_TARGETS_CHANGED = "cert.targets_changed"
    DISTRIBUTION_ATTEMPT_FAILED = "distribution.attempt_failed"
    DISTRIBUTION_SKIPPED = "distribution.skipped"
    DNS_MANUAL_CONFIRMED = "dns.manual.confirmed"
    DNS_MANUAL_CONFIRM_REQUESTED = "dns.manual.confirm_requested"
    DNS_MANUAL_NOT_VISIBLE = "dns.manual.not_visible"
    DNS_MANUAL_UNCHECKED = "dns.manual.unchecked"
    DNS_MANUAL_REQUESTED = "dns.manual.requested"
    DNS_PROPAGATION_CHECKED = "dns.propagation.checked"
    DNS_PROPAGATION_CONFIRMED = "dns.propagation.confirmed"
    DNS_RECORD_CLEANUP_FAILED = "dns.record.cleanup_failed"
    DNS_RECORD_PUBLISHED = "dns.record.published"
    DNS_RECORD_REFUSED = "dns.record.refused"
    DNS_RECORD_REMOVED = "dns.record.removed"
    ISSUER_CREATED = "issuer.created"
    ISSUER_UPDATED = "issuer.updated"
    KEY_EXPORTED = "key.exported"
    KEY_GENERATED = "key.generated"
    MEMBER_REMOVED = "member.removed"
    MEMBER_SET = "member.set"
    NOTIFICATION_CHANNEL_CREATED = "notification_channel.created"
    NOTIFICATION_FAILED = "notification.failed"
    POLICY_OVERRIDDEN = "policy.overridden"
    POLICY_UPDATED = "policy.updated"
    PROJECT_CREATED = "project.created"
    RENEWAL_DEFERRED = "renewal.deferred"
    RENEWAL_FAILED = "renewal.failed"
    RENEWAL_RETRY_SCHEDULED = "renewal.retry_scheduled"
    RENEWAL_SCHEDULED = "renewal.scheduled"
    REQUEST_APPROVED = "request.approved"
    REQUEST_CREATED = "request.created"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_REJECTED = "request.rejected"
    TARGET_CREATED = "target.created"
    TARGET_DELETED = "target.deleted"
    TARGET_UPDATED = "target.updated"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    ZONE_CREATED = "zone.created"
