from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.workflows.launcher import DbosLauncher


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    kek: KeyEncryptionKey
    launcher: DbosLauncher
