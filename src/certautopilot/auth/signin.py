"""Password sign-in behind the throttle (rules in ``auth.throttle``, counts in the database).

:func:`begin` counts the attempt against the account and the client address before any
password is checked, or refuses it with :class:`~certautopilot.errors.RateLimited` (429,
``retry_after``) while either is locked. Both rows are locked while they are read and
written (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time), so
parallel attempts are each counted. The counts live in the database, so several server
processes share them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from certautopilot.auth import throttle
from certautopilot.auth.models import SignInCounter
from certautopilot.config import Settings
from certautopilot.errors import RateLimited


class ThrottleKind(StrEnum):
    ACCOUNT = "account"
    ADDRESS = "address"


def policy_of(settings: Settings) -> throttle.ThrottlePolicy:
    return throttle.ThrottlePolicy(
        account_failures=settings.signin_account_failures,
        address_failures=settings.signin_address_failures,
        base_seconds=settings.signin_lockout_seconds,
        cap_seconds=max(settings.signin_lockout_max_seconds, settings.signin_lockout_seconds),
    )


@dataclass(frozen=True)
class Attempt:
    """One counted attempt: the counters as it left them, for :func:`succeeded`."""

    email: str
    address: str
    account: throttle.Counter
    by_address: throttle.Counter

    def retry_after(self, now: datetime) -> float | None:
        """When this attempt (if wrong) locked a key: how long until the next one."""
        waits = [throttle.retry_after(c, now) for c in (self.account, self.by_address)]
        return max((w for w in waits if w is not None), default=None)


def _key(kind: ThrottleKind, value: str) -> str:
    return hashlib.sha256(f"{kind.value}:{value}".encode()).hexdigest()


def _locked_row(session: Session, kind: ThrottleKind, value: str) -> SignInCounter:
    key = _key(kind, value)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(SignInCounter)
        .values(key_hash=key, kind=kind.value, failures=0)
        .on_conflict_do_nothing()
    )
    row = session.scalar(
        select(SignInCounter)
        .where(SignInCounter.key_hash == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None  # inserted just above, or there already
    return row


def _counter(row: SignInCounter) -> throttle.Counter:
    return throttle.Counter(
        failures=row.failures, last_at=row.last_at, locked_until=row.locked_until
    )


def _store(row: SignInCounter, counter: throttle.Counter) -> None:
    row.failures, row.last_at, row.locked_until = (
        counter.failures,
        counter.last_at,
        counter.locked_until,
    )


def normalized(email: str) -> str:
    return email.strip().lower()[:320]


def begin(
    session: Session, *, email: str, address: str, now: datetime, policy: throttle.ThrottlePolicy
) -> Attempt:
    """Counts one attempt, or raises RateLimited while the account or address is locked.
    The caller commits at once (before checking the password)."""
    forgotten = now - timedelta(seconds=policy.forget_seconds)
    session.execute(delete(SignInCounter).where(SignInCounter.last_at < forgotten))
    email = normalized(email)
    account = _locked_row(session, ThrottleKind.ACCOUNT, email)
    by_address = _locked_row(session, ThrottleKind.ADDRESS, address)
    for row, limit in ((account, "signin_account"), (by_address, "signin_address")):
        wait = throttle.retry_after(_counter(row), now)
        if wait is not None:
            raise RateLimited(
                f"Too many attempts; try again in {math.ceil(wait)} seconds.",
                limit=limit,
                retry_at=(now + timedelta(seconds=wait)).isoformat(),
                retry_after=wait,
            )
    counted_account = throttle.count_attempt(
        _counter(account), now, limit=policy.account_failures, policy=policy
    )
    counted_address = throttle.count_attempt(
        _counter(by_address), now, limit=policy.address_failures, policy=policy
    )
    _store(account, counted_account)
    _store(by_address, counted_address)
    session.flush()
    return Attempt(email, address, counted_account, counted_address)


def succeeded(session: Session, attempt: Attempt) -> None:
    """The password was right: the account's count starts over, the address gets its
    attempt back."""
    account = _locked_row(session, ThrottleKind.ACCOUNT, attempt.email)
    _store(account, throttle.Counter())
    by_address = _locked_row(session, ThrottleKind.ADDRESS, attempt.address)
    _store(by_address, throttle.give_back(_counter(by_address), counted=attempt.by_address))
    session.flush()
