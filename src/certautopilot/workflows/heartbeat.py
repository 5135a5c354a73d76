"""The heartbeat thread of a worker process: its ``worker_heartbeats`` row, every N seconds.

The first beat is written before the worker says it runs (``start``), so ``/readyz`` turns
ready as soon as a worker is up, not one interval later. A beat that fails (the database
restarting) is logged and tried again at the next interval: the thread never dies of it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from certautopilot.clock import utcnow
from certautopilot.config import Settings
from certautopilot.db.session import transaction
from certautopilot.health import service as health

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._interval = settings.worker_heartbeat_seconds
        self.identity = health.Identity(
            executor_id=settings.executor_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            app_version=settings.application_version,
            started_at=utcnow(),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self._interval)

    def beat(self) -> None:
        with transaction(self._sessions) as session:
            health.beat(session, who=self.identity, now=utcnow())

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception:  # the database may be restarting: try again next time
                log.warning("worker %s: heartbeat failed", self.identity.executor_id, exc_info=True)
