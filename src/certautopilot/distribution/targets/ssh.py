"""``ssh``: SFTP upload with a pinned host key, temp name + rename, then a reload command.

Every file is written under a temporary name in the target directory (same file system,
so the rename is atomic), its mode and owner set, and only when all are written are they
renamed over the old ones (``posix-rename@openssh.com``). The optional reload command
(e.g. ``nginx -t && nginx -s reload``) runs afterwards; a non-zero exit fails the
deployment with the command's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

import asyncssh
from pydantic import Field, model_validator

from certautopilot.distribution import guard
from certautopilot.distribution.files import FileOut, render, stale_temps, temp_name
from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)
from certautopilot.distribution.schemas import FilesSpec, KindConfig
from certautopilot.errors import DestinationRefused, InvalidInput
from certautopilot.outbound import checked_ips
from certautopilot.plugins import secret_field


class SshConfig(KindConfig):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=100)
    host_key: str = Field(
        min_length=20,
        max_length=20_000,
        description="the server's public host key(s), OpenSSH format, one per line (pinned)",
    )
    files: FilesSpec
    reload_command: str | None = Field(default=None, max_length=2000)
    command_timeout_seconds: float = Field(default=60, gt=0, le=600)
    connect_timeout_seconds: float = Field(default=15, gt=0, le=120)
    private_key: str | None = secret_field(default=None, max_length=20_000)
    password: str | None = secret_field(default=None, max_length=1000)
    pkcs12_password: str | None = secret_field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _auth(self) -> SshConfig:
        if not self.private_key and not self.password:
            raise ValueError("give private_key or password")
        if self.files.pkcs12 and not self.pkcs12_password:
            raise ValueError("files.pkcs12 needs pkcs12_password")
        return self


OUTPUT_LIMIT = 4000


def host_keys(text: str) -> list[asyncssh.SSHKey]:
    """The pinned keys: OpenSSH public key lines, with or without a known_hosts host field."""
    found: list[asyncssh.SSHKey] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if not fields[0].startswith(("ssh-", "ecdsa-", "sk-")) and len(fields) >= 3:
            line = " ".join(fields[1:])  # drop a known_hosts host pattern
        try:
            found.append(asyncssh.import_public_key(line))
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ValueError(f"not an OpenSSH public key line: {line[:40]}...") from exc
    if not found:
        raise ValueError("give at least one public host key")
    return found


def tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text.strip()
    return text if len(text) <= OUTPUT_LIMIT else "..." + text[-OUTPUT_LIMIT:]


class SshTarget:
    kind = "ssh"
    name: ClassVar[str] = "ssh"
    title: ClassVar[str] = "Files over SSH"
    config_model: ClassVar[type[SshConfig]] = SshConfig

    @classmethod
    def validate(cls, config: SshConfig, field: str) -> None:
        """Save-time rules: the pinned host key and the private key parse, the host is
        one the service may reach."""
        try:
            host_keys(config.host_key)
        except ValueError as exc:
            raise InvalidInput.field(f"{field}.host_key", str(exc)) from exc
        if config.private_key:
            try:
                asyncssh.import_private_key(config.private_key)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise InvalidInput.field(
                    f"{field}.private_key", "is not an unencrypted private key"
                ) from exc
        guard.check_remote_host(config.host, field=f"{field}.host")

    def __init__(self, config: SshConfig) -> None:
        self.config = config

    async def _connect(self) -> asyncssh.SSHClientConnection:
        c = self.config
        keys = [asyncssh.import_private_key(c.private_key)] if c.private_key else []
        try:
            # The host key is pinned (not looked up by name), so connecting to the address
            # the SSRF guard checked changes nothing else.
            address = (await checked_ips(c.host, c.port))[0]
        except DestinationRefused as exc:
            raise DistributionError(f"SSH to {c.host}:{c.port}: {exc}") from exc
        except OSError as exc:
            raise DistributionError(
                f"cannot resolve {c.host} for SSH: {exc}", retryable=True
            ) from exc
        try:
            return await asyncio.wait_for(
                asyncssh.connect(
                    address,
                    c.port,
                    username=c.username,
                    known_hosts=(host_keys(c.host_key), [], []),
                    client_keys=keys or None,
                    password=c.password,
                    agent_path=None,
                    config=None,
                    preferred_auth=("publickey" if keys else "password"),
                    connect_timeout=c.connect_timeout_seconds,
                ),
                timeout=c.connect_timeout_seconds + 5,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise DistributionError(
                f"{c.host}:{c.port} presented a host key that is not the pinned one: {exc}"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise DistributionError(
                f"{c.username}@{c.host}:{c.port} refused the credentials: {exc}"
            ) from exc
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise DistributionError(
                f"cannot reach {c.host}:{c.port} over SSH: {exc or type(exc).__name__}",
                retryable=True,
            ) from exc

    def _files(self, material: Material) -> list[FileOut]:
        return render(material, self.config.files, self.config.pkcs12_password)

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        files = self._files(material)
        token = secrets.token_hex(6)
        actions: list[str] = []
        async with await self._connect() as conn:
            doing = "upload"
            try:
                async with conn.start_sftp_client() as sftp:
                    temps = await _upload(sftp, files, token, self.config)
                    try:
                        for f, tmp in zip(files, temps, strict=True):
                            doing = f"rename into {f.path}"
                            await sftp.posix_rename(tmp, f.path)
                            actions.append(f"wrote {f.describe()}")
                    except BaseException:
                        # A failed rename leaves no temporary file behind on the host.
                        await _remove(sftp, temps[len(actions) :])
                        raise
            except (asyncssh.SFTPError, OSError) as exc:
                raise DistributionError(
                    f"SFTP {doing} on {self.config.host} failed: {exc}",
                    retryable=isinstance(exc, OSError | asyncssh.SFTPConnectionLost),
                ) from exc
            if self.config.reload_command:
                actions.append(await self._reload(conn))
        return DeployResult(actions=tuple(actions), detail={"files": [f.path for f in files]})

    async def _reload(self, conn: asyncssh.SSHClientConnection) -> str:
        command = self.config.reload_command
        assert command
        try:
            done = await conn.run(command, check=False, timeout=self.config.command_timeout_seconds)
        except asyncssh.TimeoutError as exc:
            raise DistributionError(
                f"the reload command did not finish within "
                f"{self.config.command_timeout_seconds:g} s: {tail(exc.stdout)} {tail(exc.stderr)}"
            ) from exc
        output = "\n".join(x for x in (tail(done.stdout), tail(done.stderr)) if x)
        if done.exit_status != 0:
            raise DistributionError(
                f"the reload command {command!r} exited with {done.exit_status}; the new "
                f"files are in place. Output:\n{output}"
            )
        return f"ran {command!r} (exit 0)"

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        c = self.config
        checks: list[Check] = []
        files = self._files(material)
        would = [f"write {f.describe()} via a temporary name and rename" for f in files]
        if c.reload_command:
            would.append(f"run {c.reload_command!r}")
        try:
            conn = await self._connect()
        except DistributionError as exc:
            return DryRunReport((Check("connect", False, str(exc)),), tuple(would))
        checks.append(Check("connect", True, f"{c.username}@{c.host}:{c.port}, host key pinned"))
        async with conn:
            try:
                async with conn.start_sftp_client() as sftp:
                    attrs = await sftp.stat(c.files.directory)
                    is_dir = attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
                    checks.append(
                        Check(
                            "directory",
                            is_dir,
                            f"{c.files.directory} exists"
                            if is_dir
                            else f"{c.files.directory} is not a directory",
                        )
                    )
            except asyncssh.SFTPError as exc:
                checks.append(Check("directory", False, f"{c.files.directory}: {exc}"))
                return DryRunReport(tuple(checks), tuple(would))
            probe = await conn.run(f"test -w {_quote(c.files.directory)}", check=False, timeout=15)
            if probe.exit_status is None or probe.exit_status > 1:
                checks.append(
                    Check("writable", True, "cannot run commands to check; SFTP access works")
                )
            else:
                writable = probe.exit_status == 0
                checks.append(
                    Check(
                        "writable",
                        writable,
                        "the directory is writable"
                        if writable
                        else f"{c.username} cannot write {c.files.directory}",
                    )
                )
        return DryRunReport(tuple(checks), tuple(would))


async def _upload(
    sftp: asyncssh.SFTPClient, files: list[FileOut], token: str, config: SshConfig
) -> list[str]:
    await _sweep(sftp, files)
    temps: list[str] = []
    try:
        for f in files:
            tmp = temp_name(f.path, token)
            temps.append(tmp)
            attrs = asyncssh.SFTPAttrs(permissions=f.mode)
            async with sftp.open(tmp, "wb", attrs) as handle:
                await handle.write(f.data)
            await sftp.chmod(tmp, f.mode)
            owner, group = config.files.owner, config.files.group
            if owner is not None or group is not None:
                now = await sftp.stat(tmp)
                uid = now.uid if owner is None else owner
                gid = now.gid if group is None else group
                await sftp.chown(tmp, uid=uid or 0, gid=gid or 0)
    except BaseException:
        await _remove(sftp, temps)
        raise
    return temps


async def _sweep(sftp: asyncssh.SFTPClient, files: list[FileOut]) -> None:
    """Removes what an earlier deploy cut off mid-way left (``files.stale_temps``)."""
    listed: dict[str, list[str]] = {}
    for f in files:
        folder = posixpath.dirname(f.path) or "."
        if folder not in listed:
            try:
                listed[folder] = [str(n) for n in await sftp.listdir(folder)]
            except (asyncssh.SFTPError, OSError):
                listed[folder] = []  # the upload says what is wrong with the folder
        await _remove(sftp, stale_temps(f.path, listed[folder]))


async def _remove(sftp: asyncssh.SFTPClient, paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(asyncssh.SFTPError, OSError):
            await sftp.remove(path)


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\"'\"'") + "'"
