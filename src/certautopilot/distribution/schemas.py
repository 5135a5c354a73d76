"""API shapes of distribution targets and deployments.

A target is ``{"name", "kind", "<kind>": {...}}`` like a DNS zone; each kind's block is a
pydantic model (the plugin's ``config_model``, in the plugin's own module); its fields
declared with ``secret_field`` are stored encrypted and never returned. The core reaches
them only through the registry.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from certautopilot.validation import MAX_INT32, ObjectId


def field_of(kind: str) -> str:
    """The body field that holds a kind's settings: ``aws-acm`` → ``aws_acm``."""
    return kind.replace("-", "_")


class KindConfig(BaseModel):
    """Base of the built-in kinds' settings (a plugin may use any pydantic model)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # secrets


def _mode(value: str) -> str:
    try:
        number = int(value, 8)
    except ValueError as exc:
        raise ValueError("must be an octal file mode such as 0644") from exc
    if not 0 <= number <= 0o777:
        raise ValueError("must be a file mode between 0000 and 0777")
    return f"{number:04o}"


class FilesSpec(BaseModel):
    """Which files to write in ``directory``; a name of null skips that file."""

    model_config = ConfigDict(extra="forbid")

    directory: str = Field(min_length=1, max_length=1000)
    cert: str | None = Field(default="cert.pem", max_length=200)
    chain: str | None = Field(default="chain.pem", max_length=200)
    fullchain: str | None = Field(default="fullchain.pem", max_length=200)
    key: str | None = Field(default="privkey.pem", max_length=200)
    combined: str | None = Field(
        default=None, max_length=200, description="full chain + key in one file (HAProxy)"
    )
    pkcs12: str | None = Field(
        default=None, max_length=200, description="PKCS#12 file; needs pkcs12_password"
    )
    file_mode: str = "0644"
    key_mode: str = Field(default="0600", description="mode of files holding the key")
    owner: int | None = Field(default=None, ge=0, le=MAX_INT32, description="numeric uid")
    group: int | None = Field(default=None, ge=0, le=MAX_INT32, description="numeric gid")

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return posixpath.normpath(value)

    @field_validator("cert", "chain", "fullchain", "key", "combined", "pkcs12")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or "/" in value or value in (".", "..") or "\x00" in value:
            raise ValueError("must be a plain file name inside directory")
        return value

    @field_validator("file_mode", "key_mode")
    @classmethod
    def _modes(cls, value: str) -> str:
        return _mode(value)

    @model_validator(mode="after")
    def _some(self) -> FilesSpec:
        if not self.names():
            raise ValueError("name at least one file to write")
        if len(set(self.names().values())) != len(self.names()):
            raise ValueError("two files have the same name")
        return self

    def names(self) -> dict[str, str]:
        """format → file name, for the files to write."""
        found = {
            "cert": self.cert,
            "chain": self.chain,
            "fullchain": self.fullchain,
            "key": self.key,
            "combined": self.combined,
            "pkcs12": self.pkcs12,
        }
        return {k: v for k, v in found.items() if v is not None}


class PostDeployCheck(BaseModel):
    """A TLS handshake with SNI after deploying: the served leaf must be the new one."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = Field(
        default=None, max_length=253, description="SNI; default: the certificate's first name"
    )
    wait_seconds: float = Field(
        default=10, ge=0, le=300, description="keep looking this long for the new certificate"
    )


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=4, ge=1, le=20)
    delay_seconds: float = Field(default=30, ge=0.1, le=86_400)
    backoff: float = Field(default=3, ge=1, le=10)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2, 3, ...)."""
        return float(self.delay_seconds * self.backoff ** max(0, attempt - 2))


_KIND_BLOCK = (
    "the kind's settings go in the field named after the kind (``aws-acm`` -> ``aws_acm``), "
    "validated by that target plugin's config model"
)


class TargetIn(BaseModel):
    """``{"name", "kind", "<kind_field>": {...}, ...}``: the kind's block is checked by
    its plugin (the registry knows the installed kinds), so a new kind needs no change."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"description": _KIND_BLOCK})

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")
    kind: str = Field(
        min_length=1, max_length=64, description="a target plugin's name (GET /api/v1/plugins)"
    )
    post_deploy_check: PostDeployCheck | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    def blocks(self) -> dict[str, Any]:
        """The fields beyond the common ones: the kind's block (and any stray ones)."""
        return dict(self.model_extra or {})


class TargetPatch(BaseModel):
    """Changes to a target: only the fields given. The kind's block is merged key by key
    onto the stored settings (credentials included: a new value rotates it, null removes
    it); nested blocks such as ``files`` are replaced whole. ``post_deploy_check: null``
    removes the check. The kind cannot change."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"description": _KIND_BLOCK})

    name: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"
    )
    kind: str | None = Field(default=None, description="if given, must be the target's kind")
    post_deploy_check: PostDeployCheck | None = None
    retry: RetryPolicy | None = None
    enabled: bool | None = Field(
        default=None,
        description="false: disabled, receives no deployment (settings and attached "
        "certificates kept); true: enabled again",
    )

    def blocks(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TargetOut(BaseModel):
    id: str
    name: str
    kind: str
    config: dict[str, Any] = Field(description="the kind's settings, without credentials")
    credentials: list[str] = Field(description="names of the stored (never shown) credentials")
    post_deploy_check: PostDeployCheck | None
    retry: RetryPolicy
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AttachIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[ObjectId] = Field(max_length=1000)


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[ObjectId] | None = Field(
        default=None, max_length=1000, description="default: every attached target"
    )
    dry_run: bool = False


class TargetRef(BaseModel):
    id: str
    name: str
    kind: str
    enabled: bool = True


class DeploymentOut(BaseModel):
    id: str
    target: TargetRef
    version: int
    serial: str | None
    reason: str
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TargetDeployments(BaseModel):
    """Per attached target: its latest deployment (null when never deployed)."""

    target: TargetRef
    latest: DeploymentOut | None


class DeploymentsOut(BaseModel):
    items: list[TargetDeployments]
    history: list[DeploymentOut]


class TargetTestStep(BaseModel):
    step: str
    ok: bool
    detail: str


class TargetTestOut(BaseModel):
    """A target's Test: each step of its own check, in plain words; nothing was written."""

    ok: bool
    steps: list[TargetTestStep]
    would: list[str] = Field(
        default_factory=list, description="what a deployment would write and run"
    )


class DryRunItem(BaseModel):
    target: TargetRef
    ok: bool
    checks: list[dict[str, Any]]
    would: list[str]


class DeployOut(BaseModel):
    dry_run: bool
    deployments: list[DeploymentOut] = Field(default_factory=list)
    results: list[DryRunItem] = Field(default_factory=list)


# The built-in kinds' settings models live in their plugin modules; these names stay
# importable from here (loaded on first use, so this module imports no plugin).
_MOVED = {
    "SshConfig": "ssh",
    "LocalConfig": "local",
    "HaproxyConfig": "haproxy",
    "WebhookConfig": "webhook",
    "AwsAcmConfig": "aws_acm",
    "VaultKvConfig": "vault_kv",
    "KubernetesSecretConfig": "kubernetes_secret",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        module = importlib.import_module(f"certautopilot.distribution.targets.{_MOVED[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
