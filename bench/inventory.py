"""Inventory benchmark: list API, inventory page and expiry chart with thousands of rows.

Makes a temporary database (SQLite in a temp dir; and PostgreSQL too when
``CERTAUTOPILOT_TEST_DATABASE_URL`` is set: a database of its own on that server, dropped
afterwards), applies the migrations, inserts ``--n`` certificates (default 5,000) with a
current version each (three issuers, a mix of statuses, expiries spread over a year, a few
never issued) into one project, then times the app in-process (FastAPI's TestClient: routing,
auth, the query, rendering; no network):

- ``GET /api/v1/projects/{p}/certificates`` first page (limit 50, newest first), filtered
  (status + issuer), sorted (``sort=not_after``), sorted by name 40 pages deep (cursor);
- ``GET .../certificates/expiry-histogram`` (12 weeks, one aggregate);
- the web inventory ``/p/{p}/certificates`` (25 rows + the chart), filtered + sorted, and a
  deep page.

Each figure is the median (and p95, nearest rank) of ``--repeat`` calls after one warm-up.
On SQLite it also prints the query plans of the list and chart queries. Nothing is asserted.

Usage::

    .venv/bin/python bench/inventory.py [--n 5000] [--repeat 30]
    CERTAUTOPILOT_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/inventory.py
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.dialects import sqlite

from certautopilot.app import create_app
from certautopilot.auth import service as auth
from certautopilot.certificates import inventory
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.config import Settings
from certautopilot.db.base import new_id
from certautopilot.db.migrate import alembic_config, upgrade
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.issuers.models import Issuer
from certautopilot.projects import service as projects

PASSWORD = "bench inventory password"
STATUSES = ["issued"] * 14 + ["failed", "revoked", "requested", "awaiting_dns", "issuing"]


@contextmanager
def databases() -> Iterator[Iterator[tuple[str, str]]]:
    """(label, SQLAlchemy URL) of each database to measure; PostgreSQL ones are dropped."""
    created: list[tuple[sa.Engine, str]] = []

    def urls() -> Iterator[tuple[str, str]]:
        tmp = Path(tempfile.mkdtemp(prefix="bench-inventory-"))
        yield "SQLite", f"sqlite:///{tmp / 'inventory.db'}"
        server = os.environ.get("CERTAUTOPILOT_TEST_DATABASE_URL")
        if server:
            if server.startswith("postgresql://"):
                server = "postgresql+psycopg://" + server.removeprefix("postgresql://")
            name = f"cap_bench_inventory_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            created.append((admin, name))
            yield "PostgreSQL", sa.make_url(server).set(database=name).render_as_string(False)

    try:
        yield urls()
    finally:
        for admin, name in created:
            with admin.connect() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=:n"
                    ),
                    {"n": name},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            admin.dispose()


def seed(settings: Settings, n: int) -> dict[str, Any]:
    rng = random.Random(7)
    engine = make_engine(settings)
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = auth.ensure_user(session, email="bench@example.test")
            auth.set_password(user, PASSWORD)
            project = projects.create_project(session, slug="bench", name="Bench", creator=user)
            issuers = [
                Issuer(project_id=project.id, name=name, kind="acme")
                for name in ("pebble", "corp-ca", "staging")
            ]
            session.add_all(issuers)
            session.flush()
            certs, versions = [], []
            for i in range(n):
                cid, vid = new_id(), new_id()
                status = rng.choice(STATUSES)
                issued = status not in ("requested", "issuing") or rng.random() < 0.5
                not_after = now + timedelta(days=rng.uniform(-10, 360)) if issued else None
                name = f"host{i:05d}.{rng.choice(['web', 'api', 'shop', 'corp'])}.example.test"
                certs.append(
                    {
                        "id": cid,
                        "project_id": project.id,
                        "issuer_id": issuers[i % 3].id,
                        "common_name": name,
                        "names": [name, "www." + name],
                        "key_type": "ecdsa-p256",
                        "status": status,
                        "not_after": not_after,
                        "next_renewal_at": not_after - timedelta(days=30) if not_after else None,
                        "current_version_id": vid if issued else None,
                        "created_by": user.id,
                        "created_at": now - timedelta(seconds=rng.randint(0, 86400 * 365)),
                        "updated_at": now,
                        "auto_renew": True,
                        "csr_provided": False,
                        "challenge_overrides": {},
                    }
                )
                if issued:
                    assert not_after is not None
                    versions.append(
                        {
                            "id": vid,
                            "certificate_id": cid,
                            "seq": 1,
                            "reason": "issue",
                            "status": "issued",
                            "serial": f"{i:032x}",
                            "not_before": not_after - timedelta(days=90),
                            "not_after": not_after,
                            "fingerprint_sha256": ":".join(["AB"] * 32),
                            "created_at": now,
                        }
                    )
            session.execute(sa.insert(Certificate), certs)
            session.execute(sa.insert(CertificateVersion), versions)
            out = {"project": project.slug, "issuer": issuers[1].id, "project_id": project.id}
        if settings.database_url.startswith("postgresql"):
            with engine.connect() as conn:
                conn.execute(sa.text("ANALYZE certificates"))
                conn.execute(sa.text("ANALYZE certificate_versions"))
                conn.commit()
        else:
            with engine.connect() as conn:
                conn.execute(sa.text("ANALYZE"))
                conn.commit()
    finally:
        engine.dispose()
    out["seed_seconds"] = time.perf_counter() - started
    return out


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def report(results: list[tuple[str, float, float]], name: str, med: float, p95: float) -> None:
    results.append((name, med, p95))
    print(f"  {name:<52} median {med:7.1f} ms   p95 {p95:7.1f} ms", flush=True)


def sign_in(client: TestClient) -> None:
    page = client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the sign-in page"
    r = client.post(
        "/login",
        data={"email": "bench@example.test", "password": PASSWORD, "csrf": match.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def deep_cursor(
    client: TestClient, base: str, headers: dict[str, str], sort: str, pages: int
) -> str:
    cursor = ""
    for _ in range(pages):
        body = client.get(
            base, params={"sort": sort, "limit": 50, "cursor": cursor or None}, headers=headers
        ).json()
        cursor = body["next_cursor"]
    return cursor


def plans(settings: Settings, project_id: str, issuer_id: str) -> None:
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            stmts = {
                "sort=not_after": sa.select(Certificate.id)
                .where(Certificate.project_id == project_id)
                .order_by(Certificate.not_after.asc().nulls_last(), Certificate.id)
                .limit(51),
                "sort=common_name, cursor": sa.select(Certificate.id)
                .where(
                    Certificate.project_id == project_id,
                    sa.tuple_(Certificate.common_name, Certificate.id) > ("host02000", "x"),
                )
                .order_by(Certificate.common_name, Certificate.id)
                .limit(51),
                "issuer + status, newest": sa.select(Certificate.id)
                .where(
                    Certificate.project_id == project_id,
                    Certificate.issuer_id == issuer_id,
                    Certificate.status == "issued",
                )
                .order_by(Certificate.created_at.desc(), Certificate.id.desc())
                .limit(51),
            }
            pg = session.get_bind().dialect.name == "postgresql"
            for label, stmt in stmts.items():
                dialect = session.get_bind().dialect if pg else sqlite.dialect()
                sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                explain = "EXPLAIN (COSTS OFF) " if pg else "EXPLAIN QUERY PLAN "
                rows = session.execute(sa.text(explain + sql)).all()
                steps = [str(r[0]).strip() if pg else str(r[-1]) for r in rows]
                print(f"    plan {label}: " + " | ".join(steps))
    finally:
        engine.dispose()


def query_cases(
    settings: Settings, info: dict[str, Any], deep: str, repeat: int, results: list[Any]
) -> None:
    """The list query alone (service call, no HTTP or rendering)."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            pid, iss = info["project_id"], info["issuer"]
            for name, kwargs in (
                ("query sort=not_after", {"sort": "not_after"}),
                ("query sort=common_name, page 41", {"sort": "common_name", "cursor": deep}),
                ("query status=issued + issuer", {"status": "issued", "issuer_id": iss}),
            ):
                med, p95 = timed(
                    lambda kw=kwargs: inventory.list_certificates(
                        session, project_id=pid, limit=50, **kw
                    ),
                    repeat,
                )
                report(results, "  " + name, med, p95)
    finally:
        engine.dispose()


def run(label: str, url: str, n: int, repeat: int) -> list[tuple[str, float, float]]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-inventory-data-"))
    settings = Settings(data_dir=data_dir, database_url=url)
    upgrade(settings)
    info = seed(settings, n)
    print(f"\n{label}: {n} certificates seeded in {info['seed_seconds']:.1f} s")
    engine = make_engine(settings)
    with transaction(make_sessionmaker(engine)) as session:
        user = auth.ensure_user(session, email="bench@example.test")
        token = auth.create_token(session, user=user)
    engine.dispose()
    h = {"Authorization": f"Bearer {token}"}
    p, iss = info["project"], info["issuer"]
    api = f"/api/v1/projects/{p}/certificates"
    web = f"/p/{p}/certificates"
    results: list[tuple[str, float, float]] = []
    with TestClient(create_app(settings)) as client:
        sign_in(client)

        def case(
            name: str,
            path: str,
            params: dict[str, Any] | None = None,
            *,
            headers: dict[str, str] | None = None,
        ) -> None:
            def call() -> None:
                r = client.get(path, params=params, headers=headers)
                assert r.status_code == 200, r.text[:300]

            med, p95 = timed(call, repeat)
            report(results, name, med, p95)

        case("API first page (50, newest first)", api, {"limit": 50}, headers=h)
        case(
            "API filtered (status=issued, issuer)",
            api,
            {"limit": 50, "status": "issued", "issuer": iss},
            headers=h,
        )
        case("API sorted (sort=not_after)", api, {"limit": 50, "sort": "not_after"}, headers=h)
        case(
            "API sorted (sort=-common_name)", api, {"limit": 50, "sort": "-common_name"}, headers=h
        )
        deep = deep_cursor(client, api, h, "common_name", 40)
        case(
            "API sort=common_name, page 41 (cursor)",
            api,
            {"limit": 50, "sort": "common_name", "cursor": deep},
            headers=h,
        )
        case("API search q=shop (LIKE, full scan)", api, {"limit": 50, "q": "shop"}, headers=h)
        case("API expiry histogram (12 weeks)", api + "/expiry-histogram", headers=h)
        case("web inventory first page (25 rows + chart)", web)
        case("web inventory issuer + sort=not_after", web, {"issuer": iss, "sort": "not_after"})
        case(
            "web inventory status=issued + sort=-status",
            web,
            {"status": "issued", "sort": "-status"},
        )

        engine = make_engine(settings)
        try:
            with make_sessionmaker(engine)() as session:
                med, p95 = timed(
                    lambda: inventory.expiry_histogram(
                        session, project_id=info["project_id"], now=datetime.now(UTC)
                    ),
                    repeat,
                )
        finally:
            engine.dispose()
        report(results, "chart aggregate alone (service call)", med, p95)
    query_cases(settings, info, deep, repeat, results)
    plans(settings, info["project_id"], iss)
    # The same list calls without migration 0007's indexes, for comparison.
    command.downgrade(alembic_config(settings), "0006")
    print("  without migration 0007's indexes:")
    with TestClient(create_app(settings)) as client:
        for name, params in (
            ("API sorted (sort=not_after)", {"limit": 50, "sort": "not_after"}),
            (
                "API sort=common_name, page 41 (cursor)",
                {"limit": 50, "sort": "common_name", "cursor": deep},
            ),
            (
                "API filtered (status=issued, issuer)",
                {"limit": 50, "status": "issued", "issuer": iss},
            ),
        ):
            med, p95 = timed(
                lambda params=params: client.get(api, params=params, headers=h), repeat
            )
            report(results, "  " + name, med, p95)
    query_cases(settings, info, deep, repeat, results)
    plans(settings, info["project_id"], iss)
    command.upgrade(alembic_config(settings), "heads")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("CERTAUTOPILOT_LOG_LEVEL", "WARNING")
    with databases() as urls:
        for label, url in urls:
            run(label, url, args.n, args.repeat)


if __name__ == "__main__":
    main()
