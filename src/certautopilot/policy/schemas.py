from __future__ import annotations

import fnmatch
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from certautopilot.certificates.schemas import KeyType


class CnPattern(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(min_length=1, max_length=300)
    kind: Literal["glob", "regex"] = "glob"

    @model_validator(mode="after")
    def _compiles(self) -> CnPattern:
        try:
            self.compiled()
        except re.error as exc:
            raise ValueError(f"{self.pattern!r} is not a valid regular expression: {exc}") from exc
        return self

    def compiled(self) -> re.Pattern[str]:
        source = fnmatch.translate(self.pattern) if self.kind == "glob" else self.pattern
        return re.compile(source, re.IGNORECASE)

    def matches(self, name: str) -> bool:
        """A glob must match the whole name; a regex is searched (anchor it with ^ and $)."""
        if self.kind == "glob":
            return bool(self.compiled().fullmatch(name))
        return bool(self.compiled().search(name))


class PolicyRules(BaseModel):
    """Every rule of the product page's "Policy enforcement" section.

    Empty or null means the rule does not apply.
    """

    model_config = ConfigDict(extra="forbid")

    allowed_issuers: list[str] | None = Field(
        default=None, description="Issuer ids (or names) of this project that may be used."
    )
    fallback_issuers: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=10,
        description="Issuer ids (or names), in order, tried when a certificate's own issuer "
        "cannot issue (unreachable, out of its rate-limit budget, a long Retry-After, "
        "forbidden by CAA), for certificates that name no fallback issuers of their own. "
        "A fallback must pass the issuer rules above (allowed_issuers, "
        "denied_acme_directories).",
    )
    denied_acme_directories: list[str] = Field(
        default_factory=list,
        description="Glob patterns of ACME directory URLs that may not be used, "
        "e.g. '*acme-staging*' to ban Let's Encrypt staging.",
    )
    allowed_acme_profiles: list[str] | None = Field(
        default=None,
        description="ACME profiles (draft-ietf-acme-profiles) a certificate may ask for, e.g. "
        "['tlsserver']; null: any the CA offers. A request naming no profile (the CA's "
        "default) is always allowed.",
    )
    allowed_key_types: list[KeyType] | None = None
    min_rsa_bits: int | None = Field(default=None, ge=2048, le=4096)
    min_ecdsa_bits: int | None = Field(default=None, ge=256, le=384)
    required_san_suffixes: list[str] = Field(
        default_factory=list,
        description="Every certificate must include a name under each of these suffixes.",
    )
    allowed_name_suffixes: list[str] | None = Field(
        default=None, description="Names must fall under one of these suffixes."
    )
    forbidden_cn_patterns: list[CnPattern] = Field(default_factory=list)
    mandatory_auto_renew: bool = False
    approval_required: bool = False
    request_expiry_days: int = Field(default=14, ge=1, le=365)

    @field_validator("allowed_acme_profiles")
    @classmethod
    def _profiles(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [v.strip() for v in value if v.strip()]
        for v in cleaned:
            if len(v) > 64:
                raise ValueError(f"{v[:20]!r}...: a profile name has at most 64 characters")
        return cleaned

    @field_validator("required_san_suffixes", "allowed_name_suffixes")
    @classmethod
    def _suffixes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [v.strip().lower().lstrip("*").lstrip(".").rstrip(".") for v in value if v.strip()]


class PolicyOut(BaseModel):
    rules: PolicyRules
    updated_by: str | None
    updated_at: datetime | None


class PolicyWarningOut(BaseModel):
    code: str
    field: str
    message: str
