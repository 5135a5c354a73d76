"""One row per worker process identity (its DBOS executor id), rewritten every few seconds.

``/readyz`` and the ``certautopilot_worker_last_heartbeat_timestamp_seconds`` gauge read
it. It is also what the recovery of a dead worker's workflows (issue 13, point 6) needs:
a row whose ``last_seen_at`` is older than ``Settings.worker_stale_seconds`` names an
executor whose pending DBOS workflows (``workflow_status.executor_id``) a live worker may
take over. A live worker claims such a row with one compare-and-set UPDATE of
``recovered_by``/``recovered_at`` (``WHERE executor_id = :id AND recovered_by IS NULL AND
last_seen_at = :seen``), so exactly one survivor recovers it; the dead executor, should
it come back, clears both with its next heartbeat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.db.base import Base


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"
    __table_args__ = (Index("ix_worker_heartbeats_last_seen_at", "last_seen_at"),)

    executor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(253))
    pid: Mapped[int] = mapped_column()
    app_version: Mapped[str] = mapped_column(String(64))
    #: When this process started (a restart under the same executor id moves it).
    started_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    #: The executor that took over this one's workflows after it went silent (issue 13).
    recovered_by: Mapped[str | None] = mapped_column(String(128), default=None)
    recovered_at: Mapped[datetime | None] = mapped_column(default=None)
