"""KEK from a key file in the data dir, created 0600 on first start.

The file holds one base64 key per line, the active key first. During ``kek rotate`` it
holds the new and the old key, so a crash at any point loses nothing.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.crypto.kek.keyring import Keyring, decode_key, generate_key
from certautopilot.errors import ConfigError

FILE_NAME = "kek.key"


def read_keys(path: Path) -> list[bytes]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return [decode_key(ln, source=str(path)) for ln in lines]


def write_keys(path: Path, keys: list[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(base64.b64encode(k).decode() + "\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class FileKEKConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(description="the data directory that holds kek.key (0600)")


class FileKEK(Keyring):
    name: ClassVar[str] = "file"
    title: ClassVar[str] = "Key file in the data directory"
    config_model: ClassVar[type[FileKEKConfig]] = FileKEKConfig

    @classmethod
    def from_config(cls, config: FileKEKConfig) -> FileKEK:
        return cls(config.data_dir)

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        if not self.path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            write_keys(self.path, [generate_key()])
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"{self.path} must not be readable by others (mode {mode:o})")
        super().__init__(read_keys(self.path))
