"""The key-encryption key, from the backend plugin the settings select.

KEK backends are plugins (``certautopilot.kek``): a class with ``name``, ``title`` and
``config_model`` and a ``from_config(config)`` classmethod. The settings name the backend
(``env`` when ``CERTAUTOPILOT_KEK`` is set, ``file`` otherwise) and give its config; the
class is found in the registry, so a package can add one (a cloud KMS) without a core edit.
"""

from __future__ import annotations

from typing import Any

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import ConfigError
from certautopilot.plugins import Family, registry


def backend_config(settings: Settings) -> tuple[str, dict[str, Any]]:
    """(backend name, its raw config) as the settings choose them."""
    if settings.kek_b64:
        return "env", {"active_b64": settings.kek_b64, "previous_b64": settings.kek_previous_b64}
    return "file", {"data_dir": str(settings.data_dir)}


def load_kek(settings: Settings) -> KeyEncryptionKey:
    name, raw = backend_config(settings)
    plugin = registry().family(Family.KEK).get(name)
    if plugin is None:
        raise ConfigError(f"no KEK backend plugin {name!r} is installed")
    config = plugin.config_model.model_validate(raw)
    kek = plugin.cls.from_config(config)
    assert isinstance(kek, KeyEncryptionKey)
    return kek
