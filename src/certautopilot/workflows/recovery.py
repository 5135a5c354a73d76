"""Taking over the workflows of a worker that died for good.

Why: DBOS recovers a worker's PENDING workflows when a process with the same executor id
starts again. A worker whose machine is gone never starts again, so its issuances, renewals
and deployments would wait forever. Every worker heartbeats (``workflows/heartbeat.py``);
every worker also sweeps, at the same interval, for executors whose heartbeat is older than
``CERTAUTOPILOT_WORKER_STALE_SECONDS``.

How: a stale executor is claimed with one compare-and-set (``health.service.claim``), so one
survivor takes it; the claimer then has DBOS hand that executor's PENDING workflows back to
their queues (the call behind DBOS's admin endpoint ``/dbos-workflow-recovery``). That
re-enqueue is what makes it exactly once: a workflow moves ENQUEUED -> PENDING under one
live executor's id by DBOS's atomic dequeue, and a second recovery naming the dead executor
matches nothing. A recovered workflow resumes from its last recorded step, so an ACME order
whose URL a step stored is continued, not placed again.

The stale time must exceed the longest a live worker can go without a beat (a long pause, a
database failover): a worker taken over while still alive could repeat the side effect of
the step it was in. The default, three heartbeats (30 s), is generous for that; a worker
that comes back clears the claim with its next beat and keeps the workflows it still has.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from dbos import DBOS
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.clock import utcnow
from certautopilot.config import Settings
from certautopilot.db.session import transaction
from certautopilot.health import service as health

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._me = settings.executor_id
        self._interval = settings.worker_heartbeat_seconds
        self._stale_after = timedelta(seconds=settings.worker_stale_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recovery", daemon=True)

    def sweep(self) -> dict[str, int]:
        """Recovers every stale executor this worker can claim; returns how many workflows
        each one had pending."""
        now = utcnow()
        with transaction(self._sessions) as session:
            gone = [
                row.executor_id
                for row in health.stale(session, now=now, stale_after=self._stale_after)
                if row.executor_id != self._me
            ]
        recovered: dict[str, int] = {}
        for executor_id in gone:
            with transaction(self._sessions) as session:
                mine = health.claim(
                    session,
                    executor_id=executor_id,
                    by=self._me,
                    now=now,
                    stale_after=self._stale_after,
                )
            if not mine:
                continue
            handles = DBOS._recover_pending_workflows([executor_id])
            recovered[executor_id] = len(handles)
            log.warning(
                "worker %s took over %d pending workflow(s) of worker %s, silent for over %d s",
                self._me,
                len(handles),
                executor_id,
                self._stale_after.total_seconds(),
            )
        return recovered

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sweep()
            except Exception:  # the database may be restarting: try again next time
                log.warning("worker %s: recovery sweep failed", self._me, exc_info=True)
