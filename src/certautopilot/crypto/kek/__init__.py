"""The key-encryption key, from the backend plugin the settings select.

KEK backends are plugins (``certautopilot.kek``): a class with ``name``, ``title`` and
``config_model`` and a ``from_config(config)`` classmethod. The settings name the backend
(``env`` when ``CERTAUTOPILOT_KEK`` is set, ``file`` otherwise) and give its config; the
class is found in the registry, so a package can add one (a cloud KMS) without a core edit.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.kek.chain import ChainedKEK
from certautopilot.errors import ConfigError
from certautopilot.plugins import Family, registry


def backend_config(settings: Settings) -> tuple[str, dict[str, Any]]:
    """(backend name, its raw config) as the settings choose them: the named backend with
    ``CERTAUTOPILOT_KEK_CONFIG``, else ``env`` or ``file`` as before."""
    if settings.kek_backend:
        return settings.kek_backend, dict(settings.kek_config)
    if settings.kek_b64:
        return "env", {"active_b64": settings.kek_b64, "previous_b64": settings.kek_previous_b64}
    return "file", {"data_dir": str(settings.data_dir)}


def load_kek(settings: Settings) -> KeyEncryptionKey:
    """The active backend; with a previous one configured, both (``chain.ChainedKEK``)."""
    active = open_backend(*backend_config(settings))
    if not settings.kek_previous_backend:
        return active
    previous = open_backend(
        settings.kek_previous_backend, dict(settings.kek_previous_config), previous=True
    )
    return ChainedKEK(active, previous)


def open_backend(name: str, raw: dict[str, Any], *, previous: bool = False) -> KeyEncryptionKey:
    """The backend plugin ``name`` with its raw config; errors name the variables."""
    which = "CERTAUTOPILOT_KEK_PREVIOUS" if previous else "CERTAUTOPILOT_KEK"
    plugin = registry().family(Family.KEK).get(name)
    if plugin is None:
        known = ", ".join(sorted(registry().family(Family.KEK)))
        raise ConfigError(
            f"{which}_BACKEND: no KEK backend plugin {name!r} is installed (installed: {known})"
        )
    try:
        config = plugin.config_model.model_validate(raw)
    except ValidationError as exc:
        # Name the fields, never echo the values: the config may hold a token or a PIN.
        fields = ", ".join(
            ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{which}_CONFIG for {name!r}: {fields}") from None
    kek = plugin.cls.from_config(config)
    assert isinstance(kek, KeyEncryptionKey)
    return kek
