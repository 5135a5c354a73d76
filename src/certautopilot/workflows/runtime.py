"""What workflow steps need in the worker process: settings, database, KEK.

DBOS workflows are registered functions taking only ids, so the worker sets this once at
start and steps read it. Nothing here is pickled into step data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import ConfigError


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    kek: KeyEncryptionKey
    cache: dict[str, Any] = field(default_factory=dict)


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def runtime() -> Runtime:
    if _current is None:
        raise ConfigError("the worker runtime is not set up (call set_runtime at start)")
    return _current


def launcher() -> Any:
    """The worker's DBOS client (a DbosLauncher), for enqueueing in a step's transaction."""
    return runtime().cache["launcher"]
