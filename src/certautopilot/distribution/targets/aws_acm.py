"""``aws-acm``: import into AWS Certificate Manager; renewals re-import into the same ARN.

The ARN of the first import is kept in the certificate-target state, so load balancers
and CloudFront distributions that reference it pick up every renewal. ACM (and moto)
accept a key that does not match the certificate, so the match is checked here first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from pydantic import Field

from certautopilot.distribution import guard
from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)
from certautopilot.distribution.schemas import KindConfig
from certautopilot.errors import InvalidInput
from certautopilot.plugins import secret_field


class AwsAcmConfig(KindConfig):
    region: str = Field(
        min_length=1,
        max_length=50,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="an AWS region name, e.g. eu-west-1 (it becomes part of the endpoint host)",
    )
    access_key_id: str = Field(min_length=1, max_length=200)
    secret_access_key: str = secret_field(min_length=1, max_length=500)
    session_token: str | None = secret_field(default=None, max_length=5000)
    endpoint_url: str | None = Field(default=None, max_length=1000)
    certificate_arn: str | None = Field(
        default=None, max_length=2048, description="re-import into this ARN from the start"
    )
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    timeout_seconds: float = Field(default=30, gt=0, le=300)


RETRYABLE_CODES = {
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "RequestTimeout",
}


def validate(config: AwsAcmConfig) -> None:
    if config.endpoint_url:
        guard.check_endpoint(config.endpoint_url, field="aws_acm.endpoint_url")


class AwsAcmTarget:
    kind = "aws-acm"
    name: ClassVar[str] = "aws-acm"
    title: ClassVar[str] = "AWS Certificate Manager"
    config_model: ClassVar[type[AwsAcmConfig]] = AwsAcmConfig

    @classmethod
    def validate(cls, config: AwsAcmConfig, field: str) -> None:
        """Save-time rules (SSRF guard, allowed paths): ``InvalidInput`` naming the field."""
        validate(config)

    def __init__(self, config: AwsAcmConfig) -> None:
        self.config = config

    def _client(self) -> Any:
        c = self.config
        try:
            validate(c)
        except InvalidInput as exc:
            raise DistributionError(str(exc)) from exc
        return boto3.session.Session().client(
            "acm",
            region_name=c.region,
            aws_access_key_id=c.access_key_id,
            aws_secret_access_key=c.secret_access_key,
            aws_session_token=c.session_token,
            endpoint_url=c.endpoint_url,
            config=Config(
                connect_timeout=c.timeout_seconds,
                read_timeout=c.timeout_seconds,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def _arn(self, state: Mapping[str, Any]) -> str | None:
        arn = state.get("certificate_arn") or self.config.certificate_arn
        return str(arn) if arn else None

    def _import(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        if not material.key_matches():
            raise DistributionError("the private key does not match the certificate")
        client = self._client()
        arn = self._arn(state)
        args: dict[str, Any] = {
            "Certificate": material.cert_pem.encode(),
            "PrivateKey": material.require_key().encode(),
        }
        if material.chain_pem:
            args["CertificateChain"] = material.chain_pem.encode()
        if arn:
            args["CertificateArn"] = arn
        elif self.config.tags:
            args["Tags"] = [{"Key": k, "Value": v} for k, v in self.config.tags.items()]
        try:
            new_arn = client.import_certificate(**args)["CertificateArn"]
        except ClientError as exc:
            raise _translate(exc, "import_certificate") from exc
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise DistributionError(f"cannot reach ACM: {exc}", retryable=True) from exc
        verb = "re-imported into" if arn else "imported as"
        return DeployResult(
            actions=(f"{verb} {new_arn} (serial {material.serial})",),
            state={"certificate_arn": new_arn},
            detail={"certificate_arn": new_arn},
        )

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        return await asyncio.to_thread(self._import, material, state)

    def _dry(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        arn = self._arn(state)
        would = [
            f"re-import serial {material.serial} into {arn}"
            if arn
            else f"import serial {material.serial} as a new ACM certificate"
        ]
        checks = [
            Check(
                "key",
                material.key_matches(),
                "the private key matches the certificate",
            )
        ]
        try:
            client = self._client()
            if arn:
                found = client.describe_certificate(CertificateArn=arn)["Certificate"]
                checks.append(
                    Check("certificate", True, f"{arn} exists (serial {found.get('Serial')})")
                )
            else:
                client.list_certificates(MaxItems=1)
                checks.append(Check("credentials", True, "ACM accepted the credentials"))
        except ClientError as exc:
            checks.append(Check("acm", False, str(_translate(exc, "describe"))))
        except (BotoCoreError, DistributionError) as exc:
            checks.append(Check("acm", False, f"cannot reach ACM: {exc}"))
        return DryRunReport(tuple(checks), tuple(would))

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        return await asyncio.to_thread(self._dry, material, state)


def _translate(exc: ClientError, operation: str) -> DistributionError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = str(error.get("Message", ""))
    return DistributionError(
        f"ACM {operation} failed: {code}: {message}",
        retryable=code in RETRYABLE_CODES or status >= 500,
    )
