"""``local``: the ``ssh`` behaviour on the service's own host (temp name, rename, reload).

Only under the directories an operator allowed (``guard.local_roots``); the reload
command only when the operator allowed commands. Both are checked again here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

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
from certautopilot.distribution.targets.ssh import tail
from certautopilot.errors import InvalidInput
from certautopilot.plugins import secret_field


class LocalConfig(KindConfig):
    files: FilesSpec
    reload_command: str | None = Field(default=None, max_length=2000)
    command_timeout_seconds: float = Field(default=60, gt=0, le=600)
    pkcs12_password: str | None = secret_field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _p12(self) -> LocalConfig:
        if self.files.pkcs12 and not self.pkcs12_password:
            raise ValueError("files.pkcs12 needs pkcs12_password")
        return self


def write_atomically(files: list[FileOut], owner: int | None, group: int | None) -> list[str]:
    """Writes every file under a temporary name, then renames them all (first removing
    what a write cut off mid-way left, ``files.stale_temps``)."""
    for f in files:
        folder = os.path.dirname(f.path) or "."
        with contextlib.suppress(OSError):
            for stale in stale_temps(f.path, os.listdir(folder)):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
    token = secrets.token_hex(6)
    temps: list[str] = []
    try:
        for f in files:
            tmp = temp_name(f.path, token)
            temps.append(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f.mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(f.data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, f.mode)
            if owner is not None or group is not None:
                os.chown(tmp, -1 if owner is None else owner, -1 if group is None else group)
    except OSError as exc:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise DistributionError(f"cannot write {exc.filename}: {exc.strerror}") from exc
    renamed = 0
    try:
        for f, tmp in zip(files, temps, strict=True):
            os.replace(tmp, f.path)
            renamed += 1
    except OSError as exc:
        raise DistributionError(f"cannot rename into {exc.filename}: {exc.strerror}") from exc
    finally:
        for tmp in temps[renamed:]:  # a failed rename leaves no temporary file behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return [f"wrote {f.describe()}" for f in files]


async def run_command(command: str, timeout: float) -> str:
    proc = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise DistributionError(f"the reload command did not finish within {timeout:g} s") from exc
    if proc.returncode != 0:
        raise DistributionError(
            f"the reload command {command!r} exited with {proc.returncode}; the new files "
            f"are in place. Output:\n{tail(out)}"
        )
    return f"ran {command!r} (exit 0)"


class LocalTarget:
    kind = "local"
    name: ClassVar[str] = "local"
    title: ClassVar[str] = "Files on this server"
    config_model: ClassVar[type[LocalConfig]] = LocalConfig

    @classmethod
    def validate(cls, config: LocalConfig, field: str) -> None:
        """Save-time rules: the directory and the reload command are allowed here."""
        guard.check_local_path(config.files.directory, field=f"{field}.files.directory")
        guard.check_local_command(config.reload_command, field=f"{field}.reload_command")

    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    def _check(self) -> None:
        try:
            guard.check_local_path(self.config.files.directory, field="local.files.directory")
            guard.check_local_command(self.config.reload_command, field="local.reload_command")
        except InvalidInput as exc:
            raise DistributionError(str(exc)) from exc

    async def deploy(self, material: Material, state: Mapping[str, Any]) -> DeployResult:
        self._check()
        c = self.config
        files = render(material, c.files, c.pkcs12_password)
        actions = await asyncio.to_thread(write_atomically, files, c.files.owner, c.files.group)
        if c.reload_command:
            actions.append(await run_command(c.reload_command, c.command_timeout_seconds))
        return DeployResult(actions=tuple(actions), detail={"files": [f.path for f in files]})

    async def dry_run(self, material: Material, state: Mapping[str, Any]) -> DryRunReport:
        c = self.config
        files = render(material, c.files, c.pkcs12_password)
        would = [f"write {f.describe()} via a temporary name and rename" for f in files]
        if c.reload_command:
            would.append(f"run {c.reload_command!r}")
        try:
            self._check()
        except DistributionError as exc:
            return DryRunReport((Check("allowed", False, str(exc)),), tuple(would))
        directory = c.files.directory
        exists = os.path.isdir(directory)
        checks = [Check("directory", exists, f"{directory} {'exists' if exists else 'missing'}")]
        if exists:
            writable = os.access(directory, os.W_OK)
            checks.append(Check("writable", writable, "writable" if writable else "not writable"))
        return DryRunReport(tuple(checks), tuple(would))
