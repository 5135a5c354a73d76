from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)

from certautopilot.crypto.keys import KEY_TYPES
from certautopilot.renewal.windows import SHORT_LIVED

KeyType = Literal["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
assert set(KEY_TYPES) == set(KeyType.__args__)  # type: ignore[attr-defined]

REVOCATION_REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}


class RenewalWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction_remaining: float | None = Field(default=None, gt=0, lt=1)
    days_before_expiry: float | None = Field(default=None, gt=0, le=3650)

    @model_validator(mode="after")
    def _one_of(self) -> RenewalWindow:
        if (self.fraction_remaining is None) == (self.days_before_expiry is None):
            raise ValueError("give exactly one of fraction_remaining or days_before_expiry")
        return self


class ChallengeOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone: str = Field(min_length=1, max_length=253, description="id or name of a project zone")
    challenge_name: str | None = Field(
        default=None,
        max_length=253,
        description="CNAME-delegated name to publish the TXT at, inside `zone`",
    )


class OverrideIn(BaseModel):
    """An admin's override of preflight warnings: a reason, and every warning code."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)
    acknowledged: list[str] = Field(default_factory=list, max_length=50)


class CertificateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, max_length=64)
    common_name: str = Field(
        default="", max_length=253, description="Required unless csr_pem gives the names."
    )
    sans: list[str] = Field(default_factory=list, max_length=1000)
    key_type: KeyType = "ecdsa-p256"
    auto_renew: bool = True
    renewal_window: RenewalWindow | None = None
    distribution_targets: list[str] = Field(default_factory=list, max_length=1000)
    challenge_overrides: dict[str, ChallengeOverride] = Field(default_factory=dict)
    csr_pem: str | None = Field(default=None, max_length=100_000)
    override: OverrideIn | None = None
    adcs_template: str | None = Field(
        default=None,
        max_length=100,
        description="AD CS issuers: the template to enroll in (default: the issuer's first)",
    )
    acme_profile: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="ACME issuers: a profile the CA's directory advertises (renewals keep it)",
    )
    fallback_issuers: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=10,
        description="Issuer ids (or names), in order, used when ``issuer`` cannot issue; "
        "null: the project policy's fallback_issuers; []: none",
    )


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = "unspecified"
    record_only: bool = Field(
        default=False,
        description="AD CS: record a revocation an operator already made on the CA",
    )
    all_versions: bool = Field(
        default=False,
        description="also revoke every earlier version that is still valid (issued, not "
        "expired): a renewal leaves the previous certificate usable until it expires",
    )


class VersionSummary(BaseModel):
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    lifetime_seconds: int = Field(
        default=0,
        description="the certificate's real lifetime (not_after - not_before), whatever "
        "profile was asked for; under ten days it is short-lived and renews at half of it",
    )
    short_lived: bool = False
    issuer: str | None = Field(
        default=None,
        description="the issuer that issued this version: the certificate's own, or a "
        "fallback issuer when its own could not issue",
    )

    @model_validator(mode="after")
    def _lifetime(self) -> VersionSummary:
        lifetime = self.not_after - self.not_before
        self.lifetime_seconds = int(lifetime.total_seconds())
        self.short_lived = lifetime < SHORT_LIVED
        return self


class PendingRecord(BaseModel):
    name: str
    type: Literal["TXT"] = "TXT"
    value: str


class TxtRecord(BaseModel):
    name: str = Field(description="the TXT record's fully qualified name")
    type: Literal["TXT"] = "TXT"
    value: str


class ManualDnsAction(BaseModel):
    """Status ``awaiting_dns``: publish these records, then POST .../dns-confirm."""

    kind: Literal["manual_dns"] = "manual_dns"
    records: list[TxtRecord]
    message: str = Field(description="what to do now, or why the last confirmation failed")


class CaApprovalAction(BaseModel):
    """Status ``awaiting_ca``: an AD CS CA manager has to approve the request on the CA."""

    kind: Literal["ca_approval"] = "ca_approval"
    request_id: int = Field(description="the CA's request id (ReqID)")
    template: str
    deadline: datetime = Field(description="the request fails when not approved by then")
    message: str
    last_checked_at: datetime | None = None
    last_problem: str | None = Field(
        default=None, description="why the last check could not reach the CA, if it could not"
    )


PendingAction = Annotated[ManualDnsAction | CaApprovalAction, Field(discriminator="kind")]
_PENDING_ACTION: TypeAdapter[ManualDnsAction | CaApprovalAction] = TypeAdapter(PendingAction)


def pending_action_of(stored: dict[str, Any] | None) -> ManualDnsAction | CaApprovalAction | None:
    """The typed view of ``Certificate.pending_action`` (stored as its JSON dump)."""
    return None if stored is None else _PENDING_ACTION.validate_python(stored)


class CertificateError(BaseModel):
    """Why the last issuance failed (or the request was rejected): the CA's, the DNS
    provider's or the approver's words."""

    title: str
    detail: str
    type: str | None = Field(
        default=None, description="the problem type (RFC 9457 / ACME error URN), when known"
    )
    retry_after: float | None = Field(
        default=None, description="seconds the CA asked to wait before trying again"
    )


class CertificateOut(BaseModel):
    id: str
    common_name: str
    sans: list[str]
    key_type: str
    issuer: str
    auto_renew: bool
    auto_renew_disabled_reason: str | None
    renewal_window: dict[str, Any] | None
    status: str
    pending_action: PendingAction | None
    current: VersionSummary | None
    renewal: dict[str, Any] | None
    error: CertificateError | None
    approval_request: dict[str, Any] | None = None
    csr_provided: bool = False
    acme_profile: str | None = Field(
        default=None, description="the ACME profile every order for it asks for (renewals too)"
    )
    fallback_issuers: list[str] | None = Field(
        default=None,
        description="its own ordered fallback issuer ids; null: the project policy's",
    )
    managed: bool = Field(
        default=True,
        description="false: imported; watched for expiry, never renewed until adopted",
    )
    import_source: str | None = Field(
        default=None, description="pem, pkcs12, certbot, acme.sh or upload when imported"
    )
    imported_from: dict[str, Any] | None = Field(
        default=None, description="what the tool it came from said of it (ACME server, ...)"
    )
    created_at: datetime
    updated_at: datetime


class CertificateList(BaseModel):
    items: list[CertificateOut]
    next_cursor: str | None


class WeekCountOut(BaseModel):
    start: datetime
    end: datetime
    count: int


class ExpiryHistogramOut(BaseModel):
    now: datetime
    weeks: list[WeekCountOut]
    expired: int = Field(description="not revoked, current version already expired")
    later: int = Field(description="expiring after the last week")


CONTROL_CHARACTERS = (
    "must not contain control characters (a NUL, a tab, a line break): "
    "tools such as OpenSSL could not open the file with it"
)


class Pkcs12In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: SecretStr = Field(
        min_length=8,
        max_length=1024,
        description="protects the PKCS#12 file; never stored; printable characters only",
    )

    @field_validator("password")
    @classmethod
    def _printable(cls, value: SecretStr) -> SecretStr:
        # OpenSSL reads the password as a C string: a NUL cuts it short and the file it
        # protects no longer opens with what was typed. Other control characters cannot be
        # typed at a prompt either. The message never repeats the password.
        if any(unicodedata.category(c) == "Cc" for c in value.get_secret_value()):
            raise ValueError(CONTROL_CHARACTERS)
        return value


class TimelineEvent(BaseModel):
    at: datetime
    type: str
    actor: str
    detail: dict[str, Any]


class Timeline(BaseModel):
    step: str | None
    events: list[TimelineEvent]
    next_cursor: str | None = None


class PreflightWarning(BaseModel):
    code: str
    field: str
    message: str


class DelegateHint(BaseModel):
    """The CNAME to create so a name outside every project zone can be issued."""

    cname: str
    target: str


class ChallengeOut(BaseModel):
    """Where the DNS-01 record of one name will be written, and through which zone."""

    name: str
    record_name: str
    zone: str | None
    delegated_from: str | None = None
    delegate: DelegateHint | None = None


class CaaCheckOut(BaseModel):
    """What a name's CAA records (RFC 8659, RFC 8657) say about the chosen issuer."""

    name: str
    found_at: str | None = Field(description="the name holding the relevant CAA records")
    records: list[str] = Field(description="those records, as zone-file RDATA")
    allowed: bool | None = Field(description="null when the records could not be read")
    detail: str


class PreflightOut(BaseModel):
    """The request as the service would issue it, and what project policy says about it."""

    issuer: str
    fallback_issuers: list[str] = Field(
        default_factory=list,
        description="the fallback issuer ids, in order, used when the issuer cannot issue",
    )
    common_name: str
    sans: list[str]
    key_type: str
    auto_renew: bool
    auto_renew_disabled_reason: str | None
    csr_provided: bool
    approval_required: bool
    acme_profile: str | None = None
    warnings: list[PreflightWarning]
    challenges: list[ChallengeOut] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list,
        description="How the request will be issued where that differs from what was typed "
        "(no override needed), e.g. a common name too long for the subject",
    )
    caa: list[CaaCheckOut] = Field(
        default_factory=list, description="per name: what its CAA records say about the issuer"
    )


class PersistServerOut(BaseModel):
    """What one authoritative server serves at ``_validation-persist.<name>``."""

    server: str
    values: list[str]
    error: str | None
    status: str | None


class PersistRecordOut(BaseModel):
    """The dns-persist-01 record of one manual-zone name, and what its servers serve now."""

    name: str
    zone: str
    record_name: str
    value: str | None = Field(description="the TXT value to add; null when the CA offers none")
    status: str = Field(
        description="ok, expires_soon, missing, wrong_issuer, wrong_account, "
        "no_wildcard_policy, expired, malformed, unavailable or unchecked"
    )
    detail: str
    persist_until: datetime | None
    issuer_domain: str | None
    servers: list[PersistServerOut]


class PersistRecordList(BaseModel):
    items: list[PersistRecordOut]


class VersionRef(BaseModel):
    version: int
    serial: str | None


class RevokeOut(CertificateOut):
    """The certificate after a revocation, the versions it revoked, and the earlier
    versions still valid (revoke again with ``all_versions`` to revoke those)."""

    revoked_versions: list[VersionRef]
    still_valid_versions: list[VersionRef]


class ImportFile(BaseModel):
    """One file of an import, base64-encoded: PEM, DER, PKCS#12 or a tarball of them."""

    name: str = Field(max_length=300)
    content_base64: str = Field(max_length=24 * 1024 * 1024)
    password: SecretStr | None = Field(
        default=None,
        max_length=1024,
        description="the PKCS#12 (or encrypted key's) password; never stored",
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            raise ValueError("control characters and lone surrogates are not allowed")
        return value

    @field_validator("password")
    @classmethod
    def _printable(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(
            unicodedata.category(c) in ("Cc", "Cs") for c in value.get_secret_value()
        ):
            raise ValueError(CONTROL_CHARACTERS)
        return value


class ImportLineage(BaseModel):
    """What certbot or acme.sh said of one lineage (the CLI reads their files)."""

    tool: Literal["certbot", "acme.sh"]
    name: str = Field(max_length=253, pattern=r"^[A-Za-z0-9*._-]*$")
    names: list[Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z0-9*._-]*$")]] = Field(
        default_factory=list, max_length=100
    )
    acme_server: str | None = Field(default=None, max_length=500, pattern=r"^[\x21-\x7e]*$")
    authenticator: str | None = Field(default=None, max_length=100, pattern=r"^[\x21-\x7e]*$")
    key_type: str | None = Field(default=None, max_length=32, pattern=r"^[\x21-\x7e]*$")


class ImportIn(BaseModel):
    files: list[ImportFile] = Field(max_length=500)
    source: Literal["pem", "pkcs12", "certbot", "acme.sh", "upload"] = "upload"
    lineages: list[ImportLineage] = Field(default_factory=list, max_length=1000)


class ImportOut(BaseModel):
    imported: list[dict[str, Any]]
    merged: list[dict[str, Any]]
    refused: list[dict[str, str]]
