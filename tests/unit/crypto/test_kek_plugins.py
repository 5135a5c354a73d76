"""The KEK backend is a plugin chosen by the settings and found in the registry."""

from __future__ import annotations

import base64
import json
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


def test_the_backend_is_named_and_configured_by_the_settings(tmp_path: Path) -> None:
    import pytest

    from certautopilot.errors import ConfigError

    config = json.dumps({"data_dir": str(tmp_path / "elsewhere")})
    chosen = load_kek(
        _settings(tmp_path, CERTAUTOPILOT_KEK_BACKEND="file", CERTAUTOPILOT_KEK_CONFIG=config)
    )
    assert isinstance(chosen, FileKEK) and chosen.path == tmp_path / "elsewhere" / "kek.key"

    with pytest.raises(ConfigError, match=r"no KEK backend plugin 'nope' .*installed: .*\bfile\b"):
        load_kek(_settings(tmp_path, CERTAUTOPILOT_KEK_BACKEND="nope"))
    wrong = json.dumps({"data_dir": 3, "token": "s3cr3t-token"})
    with pytest.raises(ConfigError) as caught:
        load_kek(
            _settings(tmp_path, CERTAUTOPILOT_KEK_BACKEND="file", CERTAUTOPILOT_KEK_CONFIG=wrong)
        )
    assert "data_dir" in str(caught.value) and "token: Extra inputs" in str(caught.value)
    assert "s3cr3t-token" not in str(caught.value)
    with pytest.raises(ConfigError, match="CERTAUTOPILOT_KEK_CONFIG is not valid JSON") as bad:
        _settings(tmp_path, CERTAUTOPILOT_KEK_CONFIG='{"pin": s3cr3t}')
    assert "s3cr3t" not in str(bad.value)
    with pytest.raises(ConfigError, match="must be a JSON object"):
        _settings(tmp_path, CERTAUTOPILOT_KEK_CONFIG='["a"]')
