"""The renewal scheduler as a DBOS schedule: one ``renewal_tick`` workflow per tick.

DBOS gives a scheduled run the workflow id ``sched-<schedule>-<tick time>``, so each tick
slot runs exactly once however many workers run the schedule. Ticks take turns through a
lease (``renewal/lease.py``): a tick that finds the previous one still running ends at once,
and every step of the running tick renews the lease in the same transaction as its work, so
two ticks never write at once. The lease expires: a tick held by a worker that died for good
holds later ticks back for ``CERTAUTOPILOT_RENEWAL_TICK_LEASE_SECONDS`` at most (a DBOS queue
with one deduplication id would have stopped them until that executor came back).

The body is deterministic: the clock, every query and every write are steps, and each step
is idempotent (a step that runs again after a crash finds its work done: the reconciled
renewals no longer point at a finished version, the taken certificates are no longer due,
the warnings are remembered). Every step reads at most ``Config.batch`` rows; the tick
repeats a step until a short batch says it is done, so a tick's memory does not grow with
the inventory. Step data carries only ids and counts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from dbos import DBOS

from certautopilot.clock import scheduler_now, utcnow
from certautopilot.errors import LeaseLost
from certautopilot.renewal import ari_refresh, digest
from certautopilot.renewal import lease as leases
from certautopilot.renewal import scheduler as rules
from certautopilot.workflows import counted
from certautopilot.workflows.records import tx as _tx
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


def _lease() -> leases.Lease:
    """This tick's claim on the scheduler: held by its workflow id (a recovered workflow is
    the same holder)."""
    holder = DBOS.workflow_id
    assert holder, "a renewal tick's steps run inside its workflow"
    ttl = timedelta(seconds=runtime().settings.renewal_tick_lease_seconds)
    return leases.Lease(leases.RENEWAL_TICK, holder, ttl)


@contextmanager
def tx() -> Iterator[Any]:
    """A step's transaction, which first renews the tick's lease (``LeaseLost`` if another
    tick took it over: nothing of this step is written)."""
    with _tx() as session:
        leases.keep(session, _lease(), wall=utcnow())
        yield session


@DBOS.step(name="renewal.lease")
def lease_step() -> bool:
    with _tx() as session:
        return leases.acquire(session, _lease(), wall=utcnow())


@DBOS.step(name="renewal.release")
def release_step() -> None:
    with _tx() as session:
        leases.release(session, _lease())


@DBOS.step(name="renewal.now")
def now_step() -> datetime:
    return scheduler_now(runtime().settings.clock_offset_seconds)


@DBOS.step(name="renewal.reconcile")
def reconcile_step(now: datetime) -> int:
    """One batch; the run repeats it while a full batch came back."""
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
        started = rules.start_renewal(
            session, cert_id=cert_id, now=now, launcher=launcher(), config=config()
        )
        if started is not None:
            counted.renewal_started(session)
        return started


@DBOS.step(name="renewal.warnings")
def warnings_step(now: datetime, after: str | None) -> tuple[int, str | None]:
    """One batch of expiry warnings after ``after``; returns where to go on (None: done)."""
    with tx() as session:
        return rules.expiry_warnings(
            session, now=now, launcher=launcher(), config=config(), after=after
        )


@DBOS.step(name="renewal.expiry_digest")
def digest_step(now: datetime) -> int:
    """Today's expiry digests (one per project and day; managed and imported alike)."""
    with tx() as session:
        return digest.send_digests(
            session, now=now, launcher=launcher(), public_url=config().public_url
        )


@DBOS.workflow(name=WORKFLOW_NAME)
def renewal_tick(scheduled_at: datetime, context: Any) -> None:
    if not lease_step():
        log.info("renewal tick %s skipped: the previous tick still runs", scheduled_at.isoformat())
        return
    try:
        _run(scheduled_at)
    except LeaseLost:
        log.warning(
            "renewal tick %s stopped: a later tick took its lease over (this one was "
            "presumed dead)",
            scheduled_at.isoformat(),
        )
        return
    release_step()


def _run(scheduled_at: datetime) -> None:
    now = now_step()
    while reconcile_step(now) >= config().batch:
        pass
    for cert_id in ari_due_step(now):
        try:
            ari_step(cert_id, now)
        except LeaseLost:
            raise
        except Exception:  # ARI can only help: its trouble never blocks renewals
            log.exception("renewal tick: the ARI check of %s failed", cert_id)
    started = 0
    for cert_id in due_step(now):
        try:
            if start_step(cert_id, now) is not None:
                started += 1
        except LeaseLost:
            raise
        except Exception:  # one certificate's trouble does not hold up the others
            log.exception("renewal tick: starting the renewal of %s failed", cert_id)
    after: str | None = None
    while True:
        _, after = warnings_step(now, after)
        if after is None:
            break
    try:
        digest_step(now)
    except LeaseLost:
        raise
    except Exception:  # a digest's trouble never blocks renewals
        log.exception("renewal tick: the expiry digest failed")
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
