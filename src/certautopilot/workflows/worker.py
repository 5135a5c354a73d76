"""Starts DBOS in a worker process: workflows registered, queue declared, runtime set."""

from __future__ import annotations

import logging

from dbos import DBOS, DBOSConfig
from sqlalchemy import Engine

from certautopilot import netguard
from certautopilot.config import Settings
from certautopilot.crypto.kek import load_kek
from certautopilot.db import models as _models  # noqa: F401  (every table registered)
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.workflows import distribution, issuance, notify, renewal
from certautopilot.workflows.launcher import APP_NAME, DbosLauncher
from certautopilot.workflows.runtime import Runtime, set_runtime

log = logging.getLogger(__name__)


def dbos_config(settings: Settings, engine: Engine) -> DBOSConfig:
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": settings.database_url.replace("+psycopg", ""),
        "system_database_engine": engine,
        "application_version": settings.application_version,
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
    }
    if settings.is_sqlite:
        config["notification_listener_polling_interval_sec"] = 0.05
    return config


def start_worker(settings: Settings) -> Runtime:
    engine = make_engine(settings)
    runtime = Runtime(
        settings=settings, engine=engine, sessions=make_sessionmaker(engine), kek=load_kek(settings)
    )
    set_runtime(runtime)
    netguard.install(settings.reach)  # checked again before each deployment
    assert issuance.issue_certificate is not None  # registers the workflows
    assert notify.deliver_notification is not None
    DBOS(config=dbos_config(settings, engine))
    DBOS.launch()
    DBOS.register_queue(
        issuance.QUEUE,
        worker_concurrency=settings.issuance_concurrency,
        polling_interval_sec=0.05,
    )
    distribution.register_queue()
    DBOS.register_queue(notify.QUEUE, worker_concurrency=8, polling_interval_sec=0.5)
    runtime.launcher = DbosLauncher(engine)
    renewal.register_schedule()  # the renewal scheduler (one run per tick, any workers)
    log.info("worker %s started", settings.executor_id)
    return runtime


def stop_worker() -> None:
    DBOS.destroy()
    set_runtime(None)
