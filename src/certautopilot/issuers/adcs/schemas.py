"""The ``adcs`` block of an issuer (API.md fixes its field names)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from certautopilot.plugins import secret_field

AuthMode = Literal["basic", "ntlm", "kerberos", "client_cert"]
DEFAULT_CHECK_INTERVAL = 600
DEFAULT_APPROVAL_TIMEOUT = 30 * 24 * 3600

# A template name ends up in ``CertAttrib=CertificateTemplate:<name>\r\n``: no line breaks,
# no colons, nothing that could add another request attribute.
TEMPLATE_PATTERN = r"^[^\x00-\x1f\x7f:;\"<>]{1,100}$"


class AdcsIssuerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # secrets

    url: str = Field(max_length=500, description="Web Enrollment base URL, e.g. https://ca/certsrv")
    templates: list[str] = Field(
        min_length=1,
        max_length=50,
        description="Templates offered (each an AD CS profile); the first is the default",
    )
    auth: AuthMode
    username: str | None = Field(default=None, max_length=256)
    password: str | None = secret_field(None, max_length=1024)
    client_cert_pem: str | None = Field(default=None, max_length=100_000)
    client_key_pem: str | None = secret_field(None, max_length=100_000)
    ca_bundle_pem: str | None = Field(default=None, max_length=200_000)
    check_interval_seconds: int = Field(
        default=DEFAULT_CHECK_INTERVAL,
        ge=1,
        le=86_400,
        description="How often a request waiting for CA-manager approval is re-checked",
    )
    approval_timeout_seconds: int = Field(
        default=DEFAULT_APPROVAL_TIMEOUT,
        ge=1,
        le=365 * 86_400,
        description="How long a request may wait for approval before the issuance fails",
    )

    @model_validator(mode="after")
    def _credentials(self) -> AdcsIssuerIn:
        for name in self.templates:
            if not re.match(TEMPLATE_PATTERN, name.strip()):
                raise ValueError(
                    f"template {name!r} must be 1-100 characters without line breaks, "
                    "colons, semicolons, quotes or angle brackets"
                )
        self.templates = list(dict.fromkeys(t.strip() for t in self.templates))
        if self.auth in ("basic", "ntlm") and (not self.username or not self.password):
            raise ValueError(f"auth {self.auth} needs username and password")
        if self.auth == "client_cert" and (not self.client_cert_pem or not self.client_key_pem):
            raise ValueError("auth client_cert needs client_cert_pem and client_key_pem")
        if self.auth != "client_cert" and (self.client_cert_pem or self.client_key_pem):
            raise ValueError("client_cert_pem and client_key_pem are for auth client_cert only")
        if self.auth == "kerberos" and self.password and not self.username:
            raise ValueError("a Kerberos password needs the username (principal) it belongs to")
        if self.auth == "client_cert" and (self.username or self.password):
            raise ValueError("auth client_cert takes no username or password")
        return self


class AdcsIssuerPatch(BaseModel):
    """Fields an edit may change; credentials are replaced only when given."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=500)
    templates: list[str] | None = Field(default=None, min_length=1, max_length=50)
    auth: AuthMode | None = None
    username: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=1024)
    client_cert_pem: str | None = Field(default=None, max_length=100_000)
    client_key_pem: str | None = Field(default=None, max_length=100_000)
    ca_bundle_pem: str | None = Field(default=None, max_length=200_000)
    check_interval_seconds: int | None = Field(default=None, ge=1, le=86_400)
    approval_timeout_seconds: int | None = Field(default=None, ge=1, le=365 * 86_400)


class AdcsIssuerOut(BaseModel):
    url: str
    templates: list[str]
    auth: str
    username: str | None
    has_password: bool
    client_cert_subject: str | None
    has_ca_bundle: bool
    check_interval_seconds: int
    approval_timeout_seconds: int
    templates_checked: bool = Field(
        description="True when the CA's request page listed every template at the last check"
    )
