"""The renewal scheduler as a DBOS schedule: one ``renewal_tick`` workflow per tick.

DBOS gives a scheduled run the workflow id ``sched-<schedule>-<tick time>``, so each tick
runs exactly once however many workers run the schedule. The body is deterministic: the
clock, every query and every write are steps, and each step is idempotent (a step that
runs again after a crash finds its work done: the reconciled renewals no longer point at
a finished version, the taken certificates are no longer due, the warnings are remembered).
Step data carries only ids and counts.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

from dbos import DBOS

from certautopilot.clock import scheduler_now
from certautopilot.renewal import ari_refresh
from certautopilot.renewal import scheduler as rules
from certautopilot.workflows.records import tx
from certautopilot.workflows.runtime import launcher, runtime

log = logging.getLogger(__name__)
SCHEDULE_NAME = "renewal-tick"
WORKFLOW_NAME = "renewal_tick"
ARI_BATCH = 20  # ARI look-ups per tick (each is one HTTPS GET, Retry-After apart)


def tick_seconds() -> int:
    """``CERTAUTOPILOT_RENEWAL_TICK_SECONDS`` (default 30), from the worker's settings."""
    return runtime().settings.renewal_tick_seconds


def cron_for(seconds: int) -> str:
    """A six-field (seconds first) cron expression firing every ``seconds``."""
    if seconds < 60:
        return f"*/{seconds} * * * * *"
    minutes = max(1, seconds // 60)
    return f"0 */{minutes} * * * *" if minutes < 60 else "0 0 * * * *"


def config() -> rules.Config:
    settings = runtime().settings
    return rules.Config(
        backoff=settings.renewal_backoff,
        limits=settings.rate_limits,
        public_url=settings.public_url,
    )


@DBOS.step(name="renewal.now")
def now_step() -> datetime:
    return scheduler_now(runtime().settings.clock_offset_seconds)


@DBOS.step(name="renewal.reconcile")
def reconcile_step(now: datetime) -> int:
    with tx() as session:
        return rules.reconcile(session, now=now, launcher=launcher(), config=config())


@DBOS.step(name="renewal.ari_due")
def ari_due_step(now: datetime) -> list[str]:
    with tx() as session:
        return ari_refresh.candidates(session, now=now, limit=ARI_BATCH)


@DBOS.step(name="renewal.ari")
def ari_step(cert_id: str, now: datetime) -> bool:
    """Reads, asks the CA (outside any transaction), writes; True when ARI moved the time."""
    with tx() as session:
        target = ari_refresh.target(session, runtime().kek, cert_id)
    if target is None:
        return False
    outcome = ari_refresh.lookup(target)
    with tx() as session:
        at = ari_refresh.apply(session, target, outcome, now=now, unit=random.random())
    return at is not None


@DBOS.step(name="renewal.due")
def due_step(now: datetime) -> list[str]:
    with tx() as session:
        return rules.due_certificates(session, now=now, limit=config().batch)


@DBOS.step(name="renewal.start")
def start_step(cert_id: str, now: datetime) -> str | None:
    with tx() as session:
        return rules.start_renewal(
            session, cert_id=cert_id, now=now, launcher=launcher(), config=config()
        )


@DBOS.step(name="renewal.warnings")
def warnings_step(now: datetime) -> int:
    with tx() as session:
        return rules.expiry_warnings(session, now=now, launcher=launcher(), config=config())


@DBOS.workflow(name=WORKFLOW_NAME)
def renewal_tick(scheduled_at: datetime, context: Any) -> None:
    now = now_step()
    reconcile_step(now)
    for cert_id in ari_due_step(now):
        try:
            ari_step(cert_id, now)
        except Exception:  # ARI can only help: its trouble never blocks renewals
            log.exception("renewal tick: the ARI check of %s failed", cert_id)
    started = 0
    for cert_id in due_step(now):
        try:
            if start_step(cert_id, now) is not None:
                started += 1
        except Exception:  # one certificate's trouble does not hold up the others
            log.exception("renewal tick: starting the renewal of %s failed", cert_id)
    warnings_step(now)
    if started:
        log.info("renewal tick %s started %d renewal(s)", scheduled_at.isoformat(), started)


def register_schedule() -> None:
    """Creates or updates the schedule (every worker does; DBOS upserts it atomically)."""
    DBOS.apply_schedules(
        [
            {
                "schedule_name": SCHEDULE_NAME,
                "workflow_fn": renewal_tick,
                "schedule": cron_for(tick_seconds()),
            }
        ]
    )
