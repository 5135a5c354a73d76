from __future__ import annotations

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.kek.file import FileKEK


def load_kek(settings: Settings) -> KeyEncryptionKey:
    if settings.kek_b64:
        return EnvKEK(settings.kek_b64, settings.kek_previous_b64)
    return FileKEK(settings.data_dir)
