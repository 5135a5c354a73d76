"""Starts DBOS in a worker process: workflows registered, queue declared, runtime set."""

from __future__ import annotations

import logging

from dbos import DBOS, DBOSConfig
from sqlalchemy import Engine

from certautopilot import netguard
from certautopilot.audit import forward as audit_forward
from certautopilot.config import Settings
from certautopilot.crypto.kek import load_kek
from certautopilot.db import models as _models  # noqa: F401  (every table registered)
from certautopilot.db.session import make_engine, make_sessionmaker, system_database_url
from certautopilot.workflows import distribution, issuance, logcontext, notify, renewal
from certautopilot.workflows.heartbeat import Heartbeat
from certautopilot.workflows.launcher import APP_NAME, DbosLauncher
from certautopilot.workflows.recovery import Recovery
from certautopilot.workflows.runtime import Runtime, set_runtime

log = logging.getLogger(__name__)
_heartbeat: Heartbeat | None = None
_recovery: Recovery | None = None


def dbos_config(settings: Settings, engine: Engine) -> DBOSConfig:
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": system_database_url(settings),
        "system_database_engine": engine,
        "application_version": settings.application_version,
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
    }
    if settings.is_sqlite:
        config["notification_listener_polling_interval_sec"] = 0.05
    if settings.db_pgbouncer:  # LISTEN needs a session of its own: poll instead
        config["use_listen_notify"] = False
        config["notification_listener_polling_interval_sec"] = 0.2
    return config


def start_worker(settings: Settings) -> Runtime:
    engine = make_engine(settings)
    kek, sessions = load_kek(settings), make_sessionmaker(engine)
    audit_forward.install(sessions, kek, settings)  # checkpoints and the syslog forwarder
    runtime = Runtime(settings=settings, engine=engine, sessions=sessions, kek=kek)
    set_runtime(runtime)
    logcontext.install()  # log lines name their workflow and certificate
    netguard.install(settings.reach)  # checked again before each deployment
    assert issuance.issue_certificate is not None  # registers the workflows
    assert notify.deliver_notification is not None
    DBOS(config=dbos_config(settings, engine))
    DBOS.launch()
    DBOS.register_queue(
        issuance.QUEUE,
        worker_concurrency=settings.issuance_concurrency,
        polling_interval_sec=settings.issuance_polling_seconds,
    )
    distribution.register_queue()
    DBOS.register_queue(notify.QUEUE, worker_concurrency=8, polling_interval_sec=0.5)
    runtime.launcher = DbosLauncher(engine)
    renewal.register_schedule()  # the renewal scheduler (one run per tick, any workers)
    global _heartbeat
    _heartbeat = Heartbeat(settings, runtime.sessions)
    _heartbeat.start()  # the first beat is written before the worker says it runs
    global _recovery
    _recovery = Recovery(settings, runtime.sessions)
    _recovery.start()  # takes over the workflows of workers that stopped beating
    log.info("worker %s started", settings.executor_id)
    return runtime


def stop_worker() -> None:
    global _heartbeat, _recovery
    if _recovery is not None:
        _recovery.stop()
        _recovery = None
    if _heartbeat is not None:
        _heartbeat.stop()  # the row stays: its age tells when this worker stopped
        _heartbeat = None
    DBOS.destroy()
    set_runtime(None)
