"""The tamper-evident audit trail on SQLite and PostgreSQL: rows edited, deleted, reordered
or cut off with raw SQL are found by ``certautopilot audit verify`` (and the chain
module), concurrent writers never fork a chain, the migration chains older events, and the
syslog forwarder sends RFC 5424 messages to a real socket server."""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.audit import chain, forward
from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.audit.models import AuditEvent
from certautopilot.config import Settings
from certautopilot.crypto.kek import load_kek
from certautopilot.db.migrate import alembic_config
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import Project, Service, backends, fresh_database
from tests.integration._receivers import wait_until
from tests.integration.live_server import prepared_settings

P = "p" * 32


@dataclass
class Db:
    settings: Settings
    engine: sa.Engine
    sessions: sessionmaker[Session]
    env: dict[str, str]

    def write(self, n: int, project: str = P) -> None:
        for i in range(n):
            with transaction(self.sessions) as session:
                audit.record(
                    session,
                    type=EventType.PROJECT_CREATED,
                    actor="alice@example.test",
                    project_id=project,
                    subject_type="project",
                    subject_id=project,
                    detail={"i": i, "note": "héllo"},
                )

    def sql(self, *statements: str) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))

    def verdict(self) -> chain.Finding | None:
        with self.sessions() as session:
            (result,) = chain.verify(session, load_kek(self.settings), P)
        return result.finding

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "certautopilot.cli", "audit", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(params=backends())
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    with fresh_database(request.param, tmp_path, prefix="cap_audit") as url:
        data = tmp_path / "data"
        settings = prepared_settings(url, data, AUDIT_CHECKPOINT_EVERY="5")
        engine = make_engine(settings)
        sessions = make_sessionmaker(engine)
        forward.install(sessions, load_kek(settings), settings)
        env = {
            **os.environ,
            "CERTAUTOPILOT_DATA_DIR": str(data),
            "CERTAUTOPILOT_DATABASE_URL": url,
        }
        try:
            yield Db(settings, engine, sessions, env)
        finally:
            engine.dispose()


def test_an_untouched_chain_verifies_with_its_checkpoints(db: Db) -> None:
    db.write(12)
    with db.sessions() as session:
        (result,) = chain.verify(session, load_kek(db.settings), P)
        seqs = list(session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.id)))
    assert result.finding is None
    assert (result.events, result.checkpoints) == (12, 2)  # signed at 5 and 10
    assert seqs == list(range(1, 13))
    out = db.cli("verify")
    assert out.returncode == 0, out.stderr
    assert f"OK {P}: 12 events, 2 checkpoints" in out.stdout


def test_an_edited_event_is_reported_altered(db: Db) -> None:
    db.write(6)
    db.sql(f"UPDATE audit_events SET actor = 'mallory' WHERE project_id = '{P}' AND seq = 3")
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (3, chain.Problem.ALTERED)
    out = db.cli("verify", "--project", P)
    assert out.returncode == 1
    assert f"FAILED {P}: seq 3 altered" in out.stdout


def test_an_edited_event_with_a_recomputed_hash_is_reported_altered(db: Db) -> None:
    db.write(6)
    with transaction(db.sessions) as session:
        row = session.scalars(
            sa.select(AuditEvent).where(AuditEvent.project_id == P, AuditEvent.seq == 3)
        ).one()
        row.actor = "mallory"
        row.hash = chain.hash_of(row)  # consistent in itself: event 4's link tells
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (3, chain.Problem.ALTERED)
    assert "prev_hash" in finding.why


def test_a_deleted_event_is_reported_removed(db: Db) -> None:
    db.write(6)
    db.sql(f"DELETE FROM audit_events WHERE project_id = '{P}' AND seq = 4")
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (4, chain.Problem.REMOVED)
    out = db.cli("verify")
    assert out.returncode == 1 and "seq 4 removed" in out.stdout


def test_swapped_events_are_reported_reordered(db: Db) -> None:
    db.write(6)
    where = f"project_id = '{P}'"
    db.sql(
        f"UPDATE audit_events SET seq = -1 WHERE {where} AND seq = 3",
        f"UPDATE audit_events SET seq = 3 WHERE {where} AND seq = 4",
        f"UPDATE audit_events SET seq = 4 WHERE {where} AND seq = -1",
    )
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (3, chain.Problem.REORDERED)
    out = db.cli("verify")
    assert out.returncode == 1 and "seq 3 reordered" in out.stdout


def test_swapped_row_ids_are_reported_reordered(db: Db) -> None:
    db.write(4)
    with db.engine.connect() as conn:
        a, b = conn.execute(
            sa.text(
                f"SELECT id FROM audit_events WHERE project_id = '{P}' AND seq IN (2, 3)"
                " ORDER BY seq"
            )
        ).scalars()
    db.sql(
        f"UPDATE audit_events SET id = -1 WHERE id = {a}",
        f"UPDATE audit_events SET id = {a} WHERE id = {b}",
        f"UPDATE audit_events SET id = {b} WHERE id = -1",
    )
    finding = db.verdict()
    assert finding is not None and finding.problem == chain.Problem.REORDERED


def test_a_cut_off_tail_is_reported_truncated(db: Db) -> None:
    db.write(12)
    # The tail cut and the head row moved back too: the checkpoint at 10 still tells.
    db.sql(
        f"DELETE FROM audit_events WHERE project_id = '{P}' AND seq > 7",
        f"UPDATE audit_chain_heads SET seq = 7 WHERE chain = '{P}'",
    )
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (8, chain.Problem.TRUNCATED)
    out = db.cli("verify")
    assert out.returncode == 1 and "seq 8 truncated" in out.stdout


def test_a_chain_rewritten_with_fresh_hashes_fails_its_checkpoint(db: Db) -> None:
    db.write(7)
    # An attacker without the KEK edits event 3 and recomputes every hash after it.
    with transaction(db.sessions) as session:
        rows = list(
            session.scalars(
                sa.select(AuditEvent).where(AuditEvent.project_id == P).order_by(AuditEvent.seq)
            )
        )
        prev = chain.GENESIS
        for row in rows:
            if row.seq == 3:
                row.detail = {"i": 2, "note": "nothing to see"}
            row.prev_hash = prev
            row.hash = prev = chain.hash_of(row)
        session.execute(
            sa.text(f"UPDATE audit_chain_heads SET hash = '{prev}' WHERE chain = '{P}'")
        )
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (5, chain.Problem.ALTERED)
    assert "checkpoint" in finding.why


def test_an_on_demand_checkpoint_catches_a_cut_tail(db: Db) -> None:
    db.write(3)
    out = db.cli("checkpoint", "--project", P)
    assert out.returncode == 0 and "checkpoint at seq 3" in out.stdout
    db.sql(
        f"DELETE FROM audit_events WHERE project_id = '{P}' AND seq = 3",
        f"UPDATE audit_chain_heads SET seq = 2 WHERE chain = '{P}'",
    )
    finding = db.verdict()
    assert finding is not None and (finding.seq, finding.problem) == (3, chain.Problem.TRUNCATED)


def test_concurrent_writers_never_fork_a_chain(db: Db) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer() -> None:
        try:
            start.wait()
            db.write(15)
            db.write(5, project="q" * 32)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.sessions() as session:
        results = chain.verify(session, load_kek(db.settings))
        seqs = list(
            session.scalars(
                sa.select(AuditEvent.seq).where(AuditEvent.project_id == P).order_by(AuditEvent.seq)
            )
        )
    assert seqs == list(range(1, 91))
    assert {r.chain: (r.events, r.finding) for r in results} == {
        P: (90, None),
        "q" * 32: (30, None),
    }


def _note(session: Session, who: str) -> None:
    audit.record(
        session,
        type=EventType.PROJECT_CREATED,
        actor=f"{who}@example.test",
        project_id=P,
        subject_type="project",
        subject_id=P,
        detail={"who": who},
    )


@pytest.mark.parametrize("backend", [b for b in backends() if b == "postgresql"])
def test_an_event_recorded_early_does_not_deadlock_a_writer_of_the_same_row(
    backend: str, tmp_path: Path
) -> None:
    """A records an event, then updates a row B already holds; B records an event and
    commits. Had A locked the chain's head when it recorded (a revocation and a renewal did),
    B would wait for the head while A waits for B's row: PostgreSQL breaks the deadlock by
    failing one (the API answered 503). The head is taken at commit, so both commit."""
    with fresh_database(backend, tmp_path, prefix="cap_audit") as url:
        settings = prepared_settings(url, tmp_path / "data")
        engine = make_engine(settings)
        sessions = make_sessionmaker(engine)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE shared_row (id int PRIMARY KEY, n int)"))
                conn.execute(sa.text("INSERT INTO shared_row VALUES (1, 0)"))
            bump = sa.text("UPDATE shared_row SET n = n + 1 WHERE id = 1")
            a, b = sessions(), sessions()
            a_pid = a.scalar(sa.text("SELECT pg_backend_pid()"))
            _note(a, "a")
            a.flush()
            b.execute(bump)  # B holds the row
            errors: list[BaseException] = []

            def a_writes() -> None:
                try:
                    a.execute(bump)  # waits for B's row
                    a.commit()
                except BaseException as exc:
                    errors.append(exc)

            blocked = threading.Thread(target=a_writes)
            blocked.start()

            def a_waits_for_the_row() -> bool:
                with engine.connect() as conn:
                    return bool(
                        conn.scalar(
                            sa.text(
                                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity"
                                " WHERE pid = :pid"
                            ),
                            {"pid": a_pid},
                        )
                    )

            wait_until(a_waits_for_the_row)
            _note(b, "b")
            b.commit()
            blocked.join(timeout=30)
            assert not blocked.is_alive() and errors == []
            a.close()
            b.close()
            with sessions() as session:
                rows = session.execute(
                    sa.select(AuditEvent.seq, AuditEvent.detail).order_by(AuditEvent.seq)
                ).all()
                (verified,) = chain.verify(session, load_kek(settings), P)
                n = session.scalar(sa.text("SELECT n FROM shared_row"))
            # B committed first, so its event comes first in the chain.
            assert [(seq, d["who"]) for seq, d in rows] == [(1, "b"), (2, "a")]
            assert verified.finding is None and n == 2
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", backends())
def test_the_migration_chains_existing_events(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path, prefix="cap_audit_mig") as url:
        settings = Settings.from_env(
            {
                **os.environ,
                "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
                "CERTAUTOPILOT_DATABASE_URL": url,
            }
        )
        command.upgrade(alembic_config(settings), "0019")
        engine = make_engine(settings)
        try:
            with engine.begin() as conn:
                for n, project in enumerate([P, None, P, P]):
                    conn.execute(
                        sa.text(
                            "INSERT INTO audit_events (at, project_id, actor, type, subject_type,"
                            " subject_id, detail) VALUES (:at, :p, 'bob', 'zone.created', 'zone',"
                            " 'z', :d)"
                        ),
                        {
                            "at": f"2026-01-0{n + 1} 10:00:00.123456+00:00",
                            "p": project,
                            "d": f'{{"n": {n}}}',
                        },
                    )
            command.upgrade(alembic_config(settings), "heads")
            sessions = make_sessionmaker(engine)
            with sessions() as session:
                results = chain.verify(session, None)
            assert {r.chain: (r.events, r.finding) for r in results} == {
                "": (1, None),
                P: (3, None),
            }
            # New events continue the migrated chain.
            with transaction(sessions) as session:
                event = audit.record(
                    session,
                    type=EventType.ZONE_UPDATED,
                    actor="bob",
                    project_id=P,
                    subject_type="zone",
                    subject_id="z",
                )
            assert event.seq == 4
            with sessions() as session:
                (result,) = chain.verify(session, None, P)
            assert (result.events, result.finding) == (4, None)
        finally:
            engine.dispose()


SYSLOG = re.compile(
    rb"^<110>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) (\S+) certautopilot - "
    rb"project\.created \[cap@32473 project=\"(\w+)\" seq=\"(\d+)\" hash=\"([0-9a-f]{64})\""
    rb" prevHash=\"[0-9a-f]{64}\" actor=\"alice@example\.test\" subject=\"\w+\"\] "
    rb"\xef\xbb\xbf\{.*\}$",
    re.S,
)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_the_syslog_forwarder_sends_rfc5424_after_commit(transport: str, tmp_path: Path) -> None:
    received: queue.Queue[bytes] = queue.Queue()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            received.put(self.request[0])

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self) -> None:  # octet counting: "LEN SP MSG" (RFC 6587)
            while True:
                length = b""
                while (c := self.rfile.read(1)) not in (b" ", b""):
                    length += c
                if not length:
                    return
                received.put(self.rfile.read(int(length)))

    server: socketserver.BaseServer = (
        socketserver.UDPServer(("127.0.0.1", 0), Udp)
        if transport == "udp"
        else socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tcp)
    )
    port = server.server_address[1]  # type: ignore[index]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path / 'x.db'}"
    settings = prepared_settings(
        url, tmp_path / "data", AUDIT_SYSLOG=f"{transport}://127.0.0.1:{port}"
    )
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    forwarder = forward.install(sessions, load_kek(settings), settings)
    assert forwarder is not None
    try:
        with pytest.raises(RuntimeError), transaction(sessions) as session:
            _record(session)
            raise RuntimeError("rolled back: never sent")
        db = Db(settings, engine, sessions, {})
        db.write(2)
        first, second = received.get(timeout=10), received.get(timeout=10)
        with sessions() as session:
            hashes = list(session.scalars(sa.select(AuditEvent.hash).order_by(AuditEvent.seq)))
        for message, seq in ((first, 1), (second, 2)):
            match = SYSLOG.match(message)
            assert match, message
            assert match[3].decode() == P and int(match[4]) == seq
            assert match[5].decode() == hashes[seq - 1]
        assert received.empty()
    finally:
        forwarder.close()
        server.shutdown()
        server.server_close()
        engine.dispose()


def _record(session: Session) -> None:
    audit.record(
        session,
        type=EventType.PROJECT_CREATED,
        actor="alice@example.test",
        project_id=P,
        subject_type="project",
        subject_id=P,
    )


def test_the_api_exports_json_lines_after_a_seq_and_verifies(
    service: Service, project: Project
) -> None:
    slug = project.slug
    everything = service.ok("GET", f"/projects/{slug}/audit")
    assert len(everything) >= 3  # project, issuer and zones created
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert everything[0]["prev_hash"] == chain.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(everything))

    response = service.client.get(
        f"/api/v1/projects/{slug}/audit",
        params={"after": 1, "limit": 2},
        headers={
            "Authorization": f"Bearer {service.admin_token}",
            "Accept": "application/x-ndjson",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == everything[1:3]
    as_format = service.client.get(
        f"/api/v1/projects/{slug}/audit",
        params={"after": len(everything) - 1, "format": "jsonl"},
        headers={"Authorization": f"Bearer {service.admin_token}"},
    )
    assert [json.loads(x) for x in as_format.text.splitlines()] == everything[-1:]

    bad = service.call("GET", f"/projects/{slug}/audit", params={"after": -1})
    assert bad.status_code == 422 and "after" in bad.text

    verdict = service.ok("GET", f"/projects/{slug}/audit/verify")
    assert verdict["ok"] is True and verdict["events"] == len(everything)
