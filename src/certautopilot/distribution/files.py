"""The files a file-based target (``ssh``, ``local``) writes: PEM and PKCS#12."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from certautopilot.distribution.interfaces import Material
from certautopilot.distribution.schemas import FilesSpec

KEY_FORMATS = ("key", "combined", "pkcs12")


@dataclass(frozen=True)
class FileOut:
    format: str
    path: str
    data: bytes = field(repr=False)
    mode: int

    @property
    def secret(self) -> bool:
        return self.format in KEY_FORMATS

    def describe(self) -> str:
        return f"{self.path} ({self.format}, {len(self.data)} bytes, mode {self.mode:04o})"


def render(material: Material, spec: FilesSpec, pkcs12_password: str | None) -> list[FileOut]:
    """Every file to write. Callers write them all under temporary names first and rename
    them together afterwards, so a reader never sees a new certificate beside an old key
    for longer than a few renames."""
    out: list[FileOut] = []
    file_mode, key_mode = int(spec.file_mode, 8), int(spec.key_mode, 8)
    for fmt, name in spec.names().items():
        path = posixpath.join(spec.directory, name)
        if fmt == "cert":
            data = material.cert_pem.encode()
        elif fmt == "chain":
            data = material.chain_pem.encode()
        elif fmt == "fullchain":
            data = material.fullchain_pem.encode()
        elif fmt == "key":
            data = material.require_key().encode()
        elif fmt == "combined":
            data = material.combined_pem.encode()
        else:
            assert pkcs12_password is not None
            data = material.pkcs12(pkcs12_password)
        out.append(FileOut(fmt, path, data, key_mode if fmt in KEY_FORMATS else file_mode))
    return out


def temp_name(path: str, token: str) -> str:
    head, tail = posixpath.split(path)
    return posixpath.join(head, f".{tail}.{token}.tmp")


#: A ``temp_name`` token: 6 random bytes in hex (``secrets.token_hex(6)``).
TOKEN = re.compile(r"[0-9a-f]{12}")


def stale_temps(path: str, names: list[str]) -> list[str]:
    """The temporaries of ``path`` among ``names`` (its directory's entries): what a
    deploy cut off before its renames (a lost connection, a killed worker) left behind.
    The next deploy of the same file removes them."""
    head, tail = posixpath.split(path)
    prefix, suffix = f".{tail}.", ".tmp"
    return [
        posixpath.join(head, n)
        for n in names
        if n.startswith(prefix)
        and n.endswith(suffix)
        and TOKEN.fullmatch(n[len(prefix) : -len(suffix)])
    ]
