"""``haproxy``: hot update over the runtime API, and the file written for restarts.

``set ssl cert <file> <<`` opens a transaction with the new PEM (full chain + key), and
``commit ssl cert <file>`` swaps it in without a reload; on any failure the transaction is
aborted (``abort ssl cert``) and HAProxy keeps serving the old certificate. The runtime API
keeps it in memory only, so the same PEM is then written to ``cert_file`` (temp + rename)
for the next restart. The admin socket and the file are on the service's host, under the
operator's allowed roots; a ``host:port`` admin socket goes through the network guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from certautopilot.distribution import guard
from certautopilot.distribution.files import FileOut
from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)
from certautopilot.distribution.schemas import KindConfig
from certautopilot.distribution.targets.local import write_atomically
from certautopilot.errors import DestinationRefused, InvalidInput
from certautopilot.outbound import checked_ips


class HaproxyConfig(KindConfig):
    runtime_api: str = Field(
        min_length=1,
        max_length=1000,
        description="the admin socket: an absolute unix socket path, or host:port",
    )
    cert_file: str = Field(
        min_length=2, max_length=1000, description="the crt path HAProxy loaded at start"
    )
    write_file: bool = Field(
        default=True, description="also write cert_file (full chain + key) for restarts"
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("cert_file")
    @classmethod
    def _abs(cls, value: str) -> str:
        if not value.startswith("/") or "\n" in value or " " in value:
            raise ValueError("must be an absolute path without spaces")
        return value


_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:/\s]+):(?P<port>\d{1,5})$")


def validate(config: HaproxyConfig) -> None:
    """Where the admin socket and the file are: refused unless the operator allowed it."""
    api = config.runtime_api
    match = _HOSTPORT.match(api)
    if api.startswith("/"):
        guard.check_local_path(api, field="haproxy.runtime_api")
    elif match:
        guard.check_remote_host(match["host"].strip("[]"), field="haproxy.runtime_api")
    else:
        raise InvalidInput.field(
            "haproxy.runtime_api", "must be an absolute unix socket path or host:port"
        )
    if config.write_file:
        guard.check_local_path(config.cert_file, field="haproxy.cert_file")


class HaproxyTarget:
    kind = "haproxy"
    name: ClassVar[str] = "haproxy"
    title: ClassVar[str] = "HAProxy (runtime API, no reload)"
    config_model: ClassVar[type[HaproxyConfig]] = HaproxyConfig

    @classmethod
    def validate(cls, config: HaproxyConfig, field: str) -> None:
        """Save-time rules (SSRF guard, allowed paths): ``InvalidInput`` naming the field."""
        validate(config)

    def __init__(self, config: HaproxyConfig) -> None:
        self.config = config

    async def _command(self, line: str, payload: str | None = None) -> str:
        api = self.config.runtime_api
        try:
            if api.startswith("/"):
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(api), self.config.timeout_seconds
                )
            else:
                host, _, port = api.rpartition(":")
                address = (await checked_ips(host.strip("[]"), int(port)))[0]
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, int(port)),
                    self.config.timeout_seconds,
                )
        except DestinationRefused as exc:
            raise DistributionError(f"the HAProxy runtime API at {api}: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise DistributionError(
                f"cannot reach the HAProxy runtime API at {api}: {exc or 'timeout'}",
                retryable=True,
            ) from exc
        try:
            message = line + "\n"
            if payload is not None:
                message = line + " <<\n" + payload.rstrip("\n") + "\n\n"
            writer.write(message.encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), self.config.timeout_seconds)
        except (OSError, TimeoutError) as exc:
            raise DistributionError(
                f"the HAProxy runtime API at {api} did not answer {line.split()[0]!r}: {exc}",
                retryable=True,
            ) from exc
        finally:
            writer.close()
        return data.decode(errors="replace").strip()

    def _check(self) -> None:
        try:
            validate(self.config)
        except InvalidInput as exc:
            raise DistributionError(str(exc)) from exc

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        self._check()
        name = self.config.cert_file
        pem = material.combined_pem
        answer = await self._command(f"set ssl cert {name}", pem)
        if "transaction created" not in answer.lower() and "transaction updated" not in (
            answer.lower()
        ):
            await self._abort()
            raise DistributionError(f"HAProxy refused 'set ssl cert {name}': {answer}")
        committed = await self._command(f"commit ssl cert {name}")
        if "success" not in committed.lower():
            await self._abort()
            raise DistributionError(
                f"HAProxy refused to commit {name} (rolled back, the old certificate is "
                f"still served): {committed}"
            )
        actions = [f"set and committed {name} over the runtime API"]
        if self.config.write_file:
            data = pem.encode()
            actions += await asyncio.to_thread(
                write_atomically, [FileOut("combined", name, data, 0o600)], None, None
            )
        return DeployResult(actions=tuple(actions), detail={"cert_file": name})

    async def _abort(self) -> None:
        with contextlib.suppress(DistributionError):
            await self._command(f"abort ssl cert {self.config.cert_file}")

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        name = self.config.cert_file
        would = [f"set ssl cert {name} with serial {material.serial}, then commit ssl cert {name}"]
        if self.config.write_file:
            would.append(f"write {name} (full chain + key, mode 0600) for restarts")
        try:
            self._check()
            shown = await self._command(f"show ssl cert {name}")
        except DistributionError as exc:
            return DryRunReport((Check("runtime_api", False, str(exc)),), tuple(would))
        known = "serial:" in shown.lower()
        current = re.search(r"^Serial:\s*(\S+)", shown, re.MULTILINE | re.IGNORECASE)
        checks = [
            Check(
                "certificate",
                known,
                f"HAProxy serves {name} now (serial {current[1] if current else '?'})"
                if known
                else f"HAProxy has no certificate loaded as {name}: {shown[:300]}",
            )
        ]
        return DryRunReport(tuple(checks), tuple(would))
