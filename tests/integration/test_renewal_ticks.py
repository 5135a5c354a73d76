"""Renewal ticks on the real schema (the migrations), on SQLite and PostgreSQL, with an
injected clock: a tick reads in fixed-size batches however many certificates there are,
and certificates over their account's order budget wait as a group - one
``renewal.deferred`` per certificate per budget window - and are released soonest expiry
first when the budget frees up.

Ticks take turns through a lease (``renewal/lease.py``), tested here at the rules level.

The tick here runs the scheduler's rules exactly as ``workflows/renewal.py`` runs them as
steps (each call its own transaction, repeated until a short batch), without DBOS.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from certautopilot.audit.models import AuditEvent
from certautopilot.auth.models import User
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.db.base import new_id
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.dns.models import DnsZone
from certautopilot.errors import LeaseLost
from certautopilot.issuers.models import Issuer
from certautopilot.projects.models import Project
from certautopilot.renewal import backlog, budget, lease
from certautopilot.renewal import scheduler as rules
from certautopilot.renewal.models import OrderLog, RenewalState, SchedulerLease
from certautopilot.renewal.state_rows import ensure_state
from tests.conftest import backends, fresh_database
from tests.fakes import RecordingLauncher
from tests.integration.live_server import prepared_settings

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(params=backends())
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A database of its own per test (the ticks here are global: no other test's rows)."""
    with fresh_database(request.param, tmp_path, prefix="cap_ticks") as url:
        settings = prepared_settings(url, tmp_path / "data")  # the migrations build the schema
        engine = make_engine(settings)
        try:
            yield make_sessionmaker(engine)
        finally:
            engine.dispose()


@dataclass
class Seeded:
    project_id: str
    issuer_id: str


def _base(session: Session) -> Seeded:
    project = Project(slug=f"p{uuid.uuid4().hex[:8]}", name="P")
    user = User(email=f"{uuid.uuid4().hex[:8]}@example.test")
    session.add_all([project, user])
    session.flush()
    issuer = Issuer(
        project_id=project.id,
        name="ca",
        kind="acme",
        config={"directory_url": "https://ca.example.test/dir"},
    )
    session.add(issuer)
    session.flush()
    return Seeded(project.id, issuer.id)


def _seed(
    session: Session,
    seeded: Seeded,
    *,
    count: int,
    not_after: Any,
    auto_renew: Any,
    due: Any,
    prefix: str,
) -> list[str]:
    """``count`` issued certificates (each with its current version) written in bulk;
    ``not_after``, ``auto_renew`` and ``due`` are functions of the index."""
    user_id = session.scalar(select(User.id))
    certs: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    for i in range(count):
        cid, vid = new_id(), new_id()
        end = not_after(i)
        name = f"{prefix}{i}.example{i % 50}.test"
        certs.append(
            {
                "id": cid,
                "project_id": seeded.project_id,
                "issuer_id": seeded.issuer_id,
                "common_name": name,
                "names": [name],
                "key_type": "ecdsa-p256",
                "auto_renew": auto_renew(i),
                "renewal_window": None,
                "challenge_overrides": {},
                "csr_provided": False,
                "status": "issued",
                "current_version_id": vid,
                "not_after": end,
                "next_renewal_at": (NOW - timedelta(minutes=1)) if due(i) else None,
                "created_by": user_id,
                "created_at": NOW - timedelta(days=60),
                "updated_at": NOW - timedelta(days=60),
            }
        )
        versions.append(
            {
                "id": vid,
                "certificate_id": cid,
                "seq": 1,
                "status": "issued",
                "reason": "issue",
                "serial": format(i + 1, "x"),
                "not_before": end - timedelta(days=90),
                "not_after": end,
                "created_at": NOW - timedelta(days=60),
            }
        )
    session.execute(sa.insert(Certificate), certs)
    session.execute(sa.insert(CertificateVersion), versions)
    return [c["id"] for c in certs]


def tick(sessions: sessionmaker[Session], *, now: datetime, config: rules.Config) -> dict[str, int]:
    """One tick, step by step as ``renewal_tick`` does (each call its own transaction)."""
    launcher = RecordingLauncher()
    done = Counter[str]()
    while True:
        with transaction(sessions) as session:
            n = rules.reconcile(session, now=now, launcher=launcher, config=config)
        done["reconciled"] += n
        if n < config.batch:
            break
    with transaction(sessions) as session:
        due = rules.due_certificates(session, now=now, limit=config.batch)
    for cert_id in due:
        with transaction(sessions) as session:
            if rules.start_renewal(
                session, cert_id=cert_id, now=now, launcher=launcher, config=config
            ):
                done["started"] += 1
    after: str | None = None
    while True:
        with transaction(sessions) as session:
            sent, after = rules.expiry_warnings(
                session, now=now, launcher=launcher, config=config, after=after
            )
        done["warned"] += sent
        if after is None:
            break
    return dict(done)


class RowCounter:
    """Counts the ORM statements a session factory runs and the most rows one returned."""

    def __init__(self) -> None:
        self.statements = 0
        self.most_rows = 0

    def __call__(self, state: ORMExecuteState) -> Any:
        if not state.is_select:
            return None
        result = state.invoke_statement().freeze()
        self.statements += 1
        self.most_rows = max(self.most_rows, len(result().all()))
        return result()


def test_a_tick_reads_in_fixed_size_batches(sessions: sessionmaker[Session]) -> None:
    """3,000 certificates, a third inside the warning window (half of those renewed
    automatically, so never read by the warnings query), 300 ended renewals to reconcile and
    300 due: no statement returns more than the batch, and the whole tick is a bounded
    number of statements."""
    batch = 100
    config = rules.Config(
        batch=batch, limits=budget.Limits(orders_per_account=10_000, certs_per_domain=10_000)
    )
    with transaction(sessions) as session:
        seeded = _base(session)
        in_window = _seed(
            session,
            seeded,
            count=1000,
            not_after=lambda i: NOW + timedelta(days=2 + i % 25),
            auto_renew=lambda i: i % 2 == 0,
            due=lambda i: False,
            prefix="w",
        )
        far = _seed(
            session,
            seeded,
            count=2000,
            not_after=lambda i: NOW + timedelta(days=60 + i % 20),
            auto_renew=lambda i: True,
            due=lambda i: i < 300,
            prefix="f",
        )
        ended = far[1000:1300]  # renewals that ended: a new version each, issued
        for cid in ended:
            vid = new_id()
            session.add(CertificateVersion(id=vid, certificate_id=cid, seq=2, status="issued"))
            session.add(
                RenewalState(certificate_id=cid, version_id=vid, attempts=1, warnings_sent=[])
            )
    counter = RowCounter()
    event.listen(sessions, "do_orm_execute", counter)
    try:
        done = tick(sessions, now=NOW, config=config)
    finally:
        event.remove(sessions, "do_orm_execute", counter)
    assert done == {"reconciled": 300, "started": batch, "warned": 500}, done
    assert 0 < counter.most_rows <= batch, counter.most_rows
    # 4 reconcile batches, 1 due scan, 6 warning batches, and per started renewal or
    # warning a fixed handful of look-ups: linear in the work done, not in the inventory
    assert counter.statements <= 11 + 10 * (batch + 500), counter.statements
    with transaction(sessions) as session:
        warned = set(
            session.scalars(
                select(AuditEvent.subject_id).where(AuditEvent.type == "cert.expiry_warning")
            )
        )
        assert warned == {c for i, c in enumerate(in_window) if i % 2 == 1}
        waiting = session.scalars(
            select(RenewalState.certificate_id).where(
                RenewalState.certificate_id.in_(ended), RenewalState.version_id.is_not(None)
            )
        ).all()
        assert waiting == []  # every ended renewal reconciled
    again = tick(sessions, now=NOW + timedelta(minutes=1), config=config)
    assert again == {"reconciled": 0, "started": batch, "warned": 0}, again  # none twice


def _deferred(session: Session) -> Counter[str]:
    return Counter(
        session.scalars(select(AuditEvent.subject_id).where(AuditEvent.type == "renewal.deferred"))
    )


def _started_order(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(AuditEvent.subject_id)
            .where(AuditEvent.type == "cert.renewal_started")
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


def test_deferred_renewals_wait_as_a_group_and_leave_soonest_expiry_first(
    sessions: sessionmaker[Session],
) -> None:
    """The account's budget (2 orders an hour) is full: 6 due certificates are deferred
    with one event each; ticks every 5 minutes add no event while they wait; as each
    counted order leaves the window the certificate that expires soonest goes next."""
    limits = budget.Limits(
        orders_per_account=2,
        account_window=timedelta(hours=1),
        certs_per_domain=10_000,
        duplicate_certs=10_000,
        share=1.0,
    )
    config = rules.Config(limits=limits)
    rng = random.Random(13)
    days = rng.sample(range(5, 40), 6)
    with transaction(sessions) as session:
        seeded = _base(session)
        ids = _seed(
            session,
            seeded,
            count=6,
            not_after=lambda i: NOW + timedelta(days=days[i]),
            auto_renew=lambda i: True,
            due=lambda i: True,
            prefix="d",
        )
        for minutes in (50, 40):  # the budget is full: orders 50 and 40 minutes ago
            session.add(
                OrderLog(
                    issuer_id=seeded.issuer_id,
                    registered_domain="other.test",
                    certificate_id="earlier",
                    version_id=new_id(),
                    at=NOW - timedelta(minutes=minutes),
                )
            )
    by_expiry = [cid for _, cid in sorted(zip(days, ids, strict=True))]

    first = tick(sessions, now=NOW, config=config)
    assert first.get("started", 0) == 0
    with transaction(sessions) as session:
        assert _deferred(session) == Counter({cid: 1 for cid in ids})
    for minutes in range(5, 60, 5):  # within the budget window
        tick(sessions, now=NOW + timedelta(minutes=minutes), config=config)
    with transaction(sessions) as session:
        assert _deferred(session) == Counter({cid: 1 for cid in ids})  # no event per tick
        # the two orders left the window at +10 and +20 minutes: one slot each
        assert _started_order(session) == by_expiry[:2]
    for minutes in range(60, 200, 5):
        tick(sessions, now=NOW + timedelta(minutes=minutes), config=config)
    with transaction(sessions) as session:
        assert _started_order(session) == by_expiry  # all released, soonest expiry first
        per_cert = _deferred(session)
        # at most one event per budget window of waiting (the last waited three windows)
        assert set(per_cert) == set(ids)
        assert all(n <= 3 for n in per_cert.values()), per_cert
        state = session.get(RenewalState, by_expiry[-1])
        assert state is not None and state.deferred_at is None  # released


def test_renewals_in_a_disabled_zone_wait_and_say_so_once_a_day(
    sessions: sessionmaker[Session],
) -> None:
    """A zone an admin disabled: its due certificates are not started but put off an hour
    at a time, with one ``renewal.deferred`` naming the zone per day of waiting; the other
    zone's certificate renews; once the zone is enabled its certificate renews too."""
    config = rules.Config()
    with transaction(sessions) as session:
        seeded = _base(session)
        off, on = (
            DnsZone(project_id=seeded.project_id, name=f"example{i}.test", provider="rfc2136")
            for i in (0, 1)
        )
        off.enabled = False
        session.add_all([off, on])
        # names d0.example0.test (disabled zone) and d1.example1.test
        waiting, renewing = _seed(
            session,
            seeded,
            count=2,
            not_after=lambda i: NOW + timedelta(days=20),
            auto_renew=lambda i: True,
            due=lambda i: True,
            prefix="d",
        )
        zone_id = off.id

    assert tick(sessions, now=NOW, config=config).get("started") == 1
    with transaction(sessions) as session:
        assert _started_order(session) == [renewing]
        assert _deferred(session) == Counter({waiting: 1})
        cert = session.get(Certificate, waiting)
        assert cert is not None and cert.next_renewal_at is not None
        assert cert.next_renewal_at.replace(tzinfo=UTC) == NOW + timedelta(hours=1)
        (deferred,) = session.scalars(
            select(AuditEvent).where(AuditEvent.type == "renewal.deferred")
        )
        assert deferred.detail["zones"] == ["example0.test"]
        assert "zone example0.test is disabled" in deferred.detail["reason"]
    for hours in range(1, 24):  # due again each hour: put off again, not news again
        tick(sessions, now=NOW + timedelta(hours=hours, minutes=1), config=config)
    with transaction(sessions) as session:
        assert _started_order(session) == [renewing]
        assert _deferred(session) == Counter({waiting: 1})
    tick(sessions, now=NOW + timedelta(hours=24, minutes=1), config=config)
    with transaction(sessions) as session:
        assert _deferred(session) == Counter({waiting: 2})  # a day later: said again
        zone = session.get(DnsZone, zone_id)
        assert zone is not None
        zone.enabled = True
    tick(sessions, now=NOW + timedelta(hours=25, minutes=2), config=config)
    with transaction(sessions) as session:
        assert _started_order(session) == [renewing, waiting]


def test_two_writers_creating_one_state_row_do_not_collide(
    sessions: sessionmaker[Session],
) -> None:
    """Two transactions find a certificate's state row missing at once (a tick and an ARI
    check, say): the second waits for the first and gets its row - no duplicate key."""
    with transaction(sessions) as session:
        (cid,) = _seed(
            session,
            _base(session),
            count=1,
            not_after=lambda i: NOW + timedelta(days=30),
            auto_renew=lambda i: True,
            due=lambda i: False,
            prefix="s",
        )
    first, second = sessions(), sessions()
    outcome: list[BaseException | None] = []

    def other() -> None:
        try:
            ensure_state(second, cid).attempts = 2
            second.commit()
            outcome.append(None)
        except BaseException as exc:
            second.rollback()
            outcome.append(exc)

    try:
        assert first.get(RenewalState, cid) is None
        ensure_state(first, cid).warnings_sent = ["x"]  # inserted, not committed yet
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.5)
        first.commit()
        thread.join(30)
        assert outcome == [None], outcome
    finally:
        first.close()
        second.close()
    with transaction(sessions) as session:
        rows = session.scalars(select(RenewalState).where(RenewalState.certificate_id == cid))
        (state,) = rows.all()
        assert state.attempts == 2 and state.warnings_sent == ["x"]


def test_ticks_take_turns_through_the_lease(sessions: sessionmaker[Session]) -> None:
    """One tick holds the scheduler's lease at a time; a recovered tick is the same holder; a
    holder that stopped renewing it (its worker died) loses it once it expires, and from then
    on every step of the old tick fails with ``LeaseLost`` instead of writing."""
    ttl = timedelta(seconds=300)
    first = lease.Lease(lease.RENEWAL_TICK, "sched-renewal-tick-1", ttl)
    second = lease.Lease(lease.RENEWAL_TICK, "sched-renewal-tick-2", ttl)
    with transaction(sessions) as session:
        assert lease.acquire(session, first, wall=NOW)
    with transaction(sessions) as session:
        assert not lease.acquire(session, second, wall=NOW + timedelta(seconds=1))
        assert lease.acquire(session, first, wall=NOW + timedelta(seconds=2))  # recovered
    with transaction(sessions) as session:
        lease.keep(session, first, wall=NOW + timedelta(seconds=200))  # a step moves it on
    with transaction(sessions) as session:  # still held: 200 s + 300 s
        assert not lease.acquire(session, second, wall=NOW + timedelta(seconds=450))
    with transaction(sessions) as session:  # the first tick's worker died: it expired
        assert lease.acquire(session, second, wall=NOW + timedelta(seconds=501))
    with pytest.raises(LeaseLost), transaction(sessions) as session:
        lease.keep(session, first, wall=NOW + timedelta(seconds=502))
    with transaction(sessions) as session:
        lease.release(session, first)  # not its lease any more: nothing happens
        assert not lease.acquire(session, first, wall=NOW + timedelta(seconds=503))
        lease.release(session, second)
        assert lease.acquire(session, first, wall=NOW + timedelta(seconds=504))
        row = session.get(SchedulerLease, lease.RENEWAL_TICK)
        assert row is not None and row.holder == first.holder


def test_two_ticks_starting_at_once_get_one_lease(sessions: sessionmaker[Session]) -> None:
    """Two ticks try to take a free lease at the same moment (two workers firing one
    schedule slot each): exactly one gets it, and neither fails."""
    barrier = threading.Barrier(8)
    won: list[str] = []
    errors: list[BaseException] = []

    def tick(n: int) -> None:
        claim = lease.Lease(lease.RENEWAL_TICK, f"tick-{n}", timedelta(seconds=60))
        try:
            barrier.wait(10)
            with transaction(sessions) as session:
                if lease.acquire(session, claim, wall=NOW):
                    won.append(claim.holder)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(won) == 1, (won, errors)


def test_a_renewal_storm_goes_by_urgency_within_the_budget_and_shows_its_backlog(
    sessions: sessionmaker[Session],
) -> None:
    """1,000 certificates of one account due at once (a CA's mass revocation) with Let's
    Encrypt's account budget (300 orders / 3 h, 90 % for the scheduler: 270): the ticks start
    the 270 that expire soonest, 200 a tick, and defer the rest as a group; the backlog says
    what waits and that it clears in three more budget windows."""
    limits = budget.Limits(certs_per_domain=100_000, duplicate_certs=100_000)
    config = rules.Config(limits=limits)
    pace = backlog.Pace(batch=config.batch, tick=timedelta(seconds=30))
    rng = random.Random(7)
    hours = rng.sample(range(24, 24 * 80), 1000)
    with transaction(sessions) as session:
        seeded = _base(session)
        ids = _seed(
            session,
            seeded,
            count=1000,
            not_after=lambda i: NOW + timedelta(hours=hours[i]),
            auto_renew=lambda i: True,
            due=lambda i: True,
            prefix="storm",
        )
    by_urgency = [cid for _, cid in sorted(zip(hours, ids, strict=True))]

    def view(now: datetime) -> backlog.IssuerBacklog:
        with transaction(sessions) as session:
            (row,) = backlog.project_backlog(
                session,
                project_id=seeded.project_id,
                now=now,
                pace=pace,
                limits_for=lambda issuer: limits,
            )
        return row

    before = view(NOW)
    assert (before.due, before.deferred, before.renewing) == (1000, 0, 0)
    assert before.budget == backlog.Budget(cap=270, window=timedelta(hours=3), free=270)
    assert before.clears_at == NOW + timedelta(hours=3 * 3)  # 270 now, 730 in 3 windows

    first = tick(sessions, now=NOW, config=config)
    assert first["started"] == 200  # the tick's batch
    during = view(NOW)
    assert (during.due, during.renewing, during.budget and during.budget.free) == (800, 200, 70)
    for n in range(1, 6):
        tick(sessions, now=NOW + timedelta(seconds=30 * n), config=config)
    with transaction(sessions) as session:
        assert _started_order(session) == by_urgency[:270]  # soonest expiry first
    after = view(NOW + timedelta(minutes=3))
    assert (after.due, after.deferred, after.renewing) == (0, 730, 270)
    assert after.budget is not None and after.budget.free == 0
    assert after.clears_at == NOW + timedelta(minutes=3) + timedelta(hours=3 * 3)


def test_a_renewal_whose_issuer_has_no_budget_starts_on_its_fallback(
    sessions: sessionmaker[Session],
) -> None:
    """The issuer's budget (1 order an hour) is full; the certificate names a fallback
    issuer whose own budget is empty: the renewal starts at once, on the fallback, and the
    timeline says why; a certificate without a fallback waits (``renewal.deferred``)."""
    limits = budget.Limits(
        orders_per_account=1,
        account_window=timedelta(hours=1),
        certs_per_domain=10_000,
        duplicate_certs=10_000,
        share=1.0,
    )
    config = rules.Config(limits=limits)
    with transaction(sessions) as session:
        seeded = _base(session)
        spare = Issuer(
            project_id=seeded.project_id,
            name="spare",
            kind="acme",
            config={"directory_url": "https://spare.example.test/dir"},
        )
        session.add(spare)
        with_fallback, without = _seed(
            session,
            seeded,
            count=2,
            not_after=lambda i: NOW + timedelta(days=10 + i),
            auto_renew=lambda i: True,
            due=lambda i: True,
            prefix="fb",
        )
        session.flush()
        cert = session.get(Certificate, with_fallback)
        assert cert is not None
        cert.fallback_issuer_ids = [spare.id]
        session.add(
            OrderLog(
                issuer_id=seeded.issuer_id,
                registered_domain="other.test",
                certificate_id="earlier",
                version_id=new_id(),
                at=NOW - timedelta(minutes=30),
            )
        )
        spare_id = spare.id

    tick(sessions, now=NOW, config=config)
    with transaction(sessions) as session:
        assert _started_order(session) == [with_fallback]
        assert _deferred(session) == Counter({without: 1})
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.type == "cert.issuer_fallback")
        ).all()
        assert event.subject_id == with_fallback
        assert event.detail["reason"] == "budget"
        assert (event.detail["from"], event.detail["to"]) == (seeded.issuer_id, spare_id)
        version = session.scalar(
            select(CertificateVersion).where(
                CertificateVersion.certificate_id == with_fallback, CertificateVersion.seq == 2
            )
        )
        assert version is not None and version.issuer_id == spare_id
        counted = session.scalars(
            select(OrderLog.issuer_id).where(OrderLog.version_id == version.id)
        ).all()
        assert counted and set(counted) == {spare_id}
