"""The KEK backend is a plugin chosen by the settings and found in the registry."""

from __future__ import annotations

import base64
from pathlib import Path

from certautopilot.config import Settings
from certautopilot.crypto.kek import load_kek
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.kek.file import FileKEK
from certautopilot.plugins import Family, registry


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
            "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db'}",
            **env,
        }
    )


def test_file_and_env_backends_are_registered(tmp_path: Path) -> None:
    kek = registry().family(Family.KEK)
    assert kek["file"].cls is FileKEK and kek["env"].cls is EnvKEK
    assert kek["env"].secrets == ("active_b64",)
    assert isinstance(load_kek(_settings(tmp_path)), FileKEK)
    key = base64.b64encode(bytes(range(32))).decode()
    chosen = load_kek(_settings(tmp_path, CERTAUTOPILOT_KEK=key))
    assert isinstance(chosen, EnvKEK)
    assert key not in repr(chosen)
