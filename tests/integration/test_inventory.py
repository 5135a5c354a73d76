"""The inventory through the API: sorts with keyset paging, the issuer filter, the expiry
histogram, and the PKCS#12 download (admins only, audited, opens with its password).

Listing tests seed certificate rows straight into the service's database (a fresh project
each, a second issuer row beside the real Pebble one): what is under test is the query,
not issuance. The PKCS#12 tests issue real certificates from Pebble.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import select

from certautopilot.certificates.models import Certificate
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.issuers.models import Issuer
from certautopilot.projects.models import Project as ProjectRow
from tests.conftest import Project, Service

SORT_KEYS = ("common_name", "not_after", "status", "created_at")
STATUSES = ("issued", "issued", "issued", "failed", "requested", "revoked", "awaiting_dns")


def _seed(service: Service, project: Project, n: int, now: datetime) -> dict[str, Any]:
    """``n`` certificates on two issuers: ties in every key, some never issued (no
    not_after), some expired, some revoked. Returns the second issuer's id and the rows."""
    rng = random.Random(n)
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            pid = session.scalar(select(ProjectRow.id).where(ProjectRow.slug == project.slug))
            other = Issuer(project_id=pid, name=f"other-{uuid.uuid4().hex[:6]}", kind="acme")
            session.add(other)
            session.flush()
            day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
            rows = []
            for i in range(n):
                status = STATUSES[i % len(STATUSES)]
                never = status in ("requested", "awaiting_dns") and i % 2 == 0
                # Whole days from day0 + 12 h: never on a week boundary, so counts are exact.
                not_after = None if never else day0 + timedelta(days=rng.randint(-5, 100), hours=12)
                name = f"h{rng.randint(0, n // 3):04d}.example.test"  # repeated names: ties
                rows.append(
                    Certificate(
                        project_id=pid,
                        issuer_id=other.id if i % 3 == 0 else project.issuer_id,
                        common_name=name,
                        names=[name],
                        key_type="ecdsa-p256",
                        status=status,
                        not_after=not_after,
                        created_by="seed",
                        created_at=day0 - timedelta(minutes=rng.randint(0, n // 4)),  # ties too
                    )
                )
            session.add_all(rows)
            session.flush()
            out = [
                {
                    "id": c.id,
                    "common_name": c.common_name,
                    "status": c.status,
                    "not_after": c.not_after,
                    "created_at": c.created_at,
                    "issuer": c.issuer_id,
                }
                for c in rows
            ]
            return {"other_issuer": other.id, "rows": out, "day0": day0}
    finally:
        engine.dispose()


def _expected(rows: list[dict[str, Any]], sort: str) -> list[str]:
    key = sort.removeprefix("-")
    desc = sort.startswith("-")
    dated = [r for r in rows if r[key] is not None]
    undated = [r for r in rows if r[key] is None]
    dated.sort(key=lambda r: (r[key], r["id"]), reverse=desc)
    undated.sort(key=lambda r: r["id"], reverse=desc)
    ordered = undated + dated if desc else dated + undated  # no expiry: after every date
    return [r["id"] for r in ordered]


def _all_pages(service: Service, slug: str, limit: int, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = service.ok("GET", f"/projects/{slug}/certificates", params=query)
        assert len(page["items"]) <= limit
        ids += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
        assert len(page["items"]) == limit


@pytest.fixture
def seeded(service: Service, project: Project) -> dict[str, Any]:
    return _seed(service, project, 230, datetime.now(UTC))


@pytest.mark.parametrize("sort", [s for k in SORT_KEYS for s in (k, "-" + k)])
def test_every_sort_pages_through_every_row_once_in_order(
    service: Service, project: Project, seeded: dict[str, Any], sort: str
) -> None:
    got = _all_pages(service, project.slug, 17, sort=sort)
    assert got == _expected(seeded["rows"], sort)


def test_filters_combine_with_sort_and_paging(
    service: Service, project: Project, seeded: dict[str, Any]
) -> None:
    other = seeded["other_issuer"]
    rows = [r for r in seeded["rows"] if r["issuer"] == other]
    got = _all_pages(service, project.slug, 9, issuer=other, sort="-not_after")
    assert got == _expected(rows, "-not_after")
    assert 0 < len(got) < len(seeded["rows"])

    issued = [r for r in rows if r["status"] == "issued"]
    got = _all_pages(service, project.slug, 7, issuer=other, status="issued", sort="common_name")
    assert got == _expected(issued, "common_name")

    start = seeded["day0"] + timedelta(days=14)
    end = start + timedelta(days=7)
    window = [r for r in seeded["rows"] if r["not_after"] and start <= r["not_after"] < end]
    got = _all_pages(
        service,
        project.slug,
        5,
        expiring_after=start.isoformat(),
        expiring_before=end.isoformat(),
        sort="not_after",
    )
    assert got == _expected(window, "not_after") and window

    # An issuer of another project (or a made-up id) matches nothing; never an error.
    assert service.ok("GET", f"/projects/{project.slug}/certificates?issuer=nope")["items"] == []


def test_cursor_is_bound_to_its_sort_and_bad_input_is_named(
    service: Service, project: Project, seeded: dict[str, Any]
) -> None:
    base = f"/projects/{project.slug}/certificates"
    page = service.ok("GET", base, params={"sort": "common_name", "limit": 10})
    cursor = page["next_cursor"]
    # The same cursor continues its own sort ...
    nxt = service.ok("GET", base, params={"sort": "common_name", "limit": 10, "cursor": cursor})
    assert nxt["items"][0]["id"] == _expected(seeded["rows"], "common_name")[10]
    # ... and is refused for another sort key or direction, naming the field.
    for other in ("-common_name", "not_after", "-created_at"):
        r = service.call("GET", base, params={"sort": other, "cursor": cursor})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "cursor"
        assert "sort=common_name" in r.json()["errors"][0]["message"]
    for bad in ("name", "-", "--created_at", "not_after;drop"):
        r = service.call("GET", base, params={"sort": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sort", r.text
    r = service.call("GET", base, params={"cursor": "bm90LWEtY3Vyc29y"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"
    # The default sort is newest first, as before.
    first = service.ok("GET", base, params={"limit": 5})["items"]
    assert [c["id"] for c in first] == _expected(seeded["rows"], "-created_at")[:5]


def _seed_names(service: Service, project: Project, names: list[list[str]]) -> list[str]:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            pid = session.scalar(select(ProjectRow.id).where(ProjectRow.slug == project.slug))
            rows = [
                Certificate(
                    project_id=pid,
                    issuer_id=project.issuer_id,
                    common_name=n[0],
                    names=n,
                    key_type="ecdsa-p256",
                    status="issued",
                    created_by="seed",
                )
                for n in names
            ]
            session.add_all(rows)
            session.flush()
            return [c.id for c in rows]
    finally:
        engine.dispose()


@pytest.fixture(params=["sparse", "dense"])
def search_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite reads few FTS matches by key and checks each row when there are many
    (``FTS_DENSE``): "dense" lowers the threshold so these tests take that path too."""
    from certautopilot.certificates import inventory

    if request.param == "dense":
        monkeypatch.setattr(inventory, "FTS_DENSE", 1)
    return str(request.param)


@pytest.mark.usefixtures("search_path")
def test_search_matches_names_literally(service: Service, project: Project) -> None:
    """``q`` is a substring of one name, as typed: no LIKE wildcard, no JSON syntax matches;
    under 3 characters, the start of the common name."""
    pair, dash, under = _seed_names(
        service,
        project,
        [
            ["www.example.test", "api.example.test"],
            ["x-1.example.test"],
            ["a_b.example.test"],  # not a host name, but a discovered certificate may carry it
        ],
    )

    def found(q: str) -> set[str]:
        page = service.ok("GET", f"/projects/{project.slug}/certificates", params={"q": q})
        return {c["id"] for c in page["items"]}

    assert found("example.test") == {pair, dash, under}
    assert found("API.example") == {pair}  # names are lower-case; so is the search
    assert found("x-1") == {dash}
    assert found("_b.") == {under}
    for nothing in ("%", '"', "[", "]", ",", "\\", 'test","api', "www%api", "a_c", "x_1", "%a%"):
        assert found(nothing) == set(), nothing
    assert found("   ") == {pair, dash, under}  # blank: no filter
    # Shorter than 3 characters: the start of the common name (trigrams need 3).
    assert found("a_") == {under}
    assert found("ww") == found("W") == {pair}
    assert found("_") == found("ap") == found("1.") == found("%") == set()


def test_expiry_histogram_counts_each_week(
    service: Service, project: Project, seeded: dict[str, Any]
) -> None:
    now = datetime.now(UTC)
    hist = service.ok("GET", f"/projects/{project.slug}/certificates/expiry-histogram")
    assert len(hist["weeks"]) == 12
    live = [r for r in seeded["rows"] if r["not_after"] and r["status"] != "revoked"]
    day0 = seeded["day0"]
    for i, week in enumerate(hist["weeks"]):
        lo = max(day0 + timedelta(days=7 * i), now)
        hi = day0 + timedelta(days=7 * (i + 1))
        assert datetime.fromisoformat(week["end"]) == hi
        want = sum(1 for r in live if lo <= r["not_after"] < hi)
        assert week["count"] == want, (i, week)
    assert hist["expired"] == sum(1 for r in live if r["not_after"] < now)
    assert hist["later"] == sum(1 for r in live if r["not_after"] >= day0 + timedelta(weeks=12))
    assert hist["expired"] + hist["later"] + sum(w["count"] for w in hist["weeks"]) == len(live)

    other = seeded["other_issuer"]
    mine = service.ok(
        "GET", f"/projects/{project.slug}/certificates/expiry-histogram?weeks=4&issuer={other}"
    )
    assert len(mine["weeks"]) == 4
    live_other = [r for r in live if r["issuer"] == other]
    assert mine["weeks"][1]["count"] == sum(
        1
        for r in live_other
        if day0 + timedelta(days=7) <= r["not_after"] < day0 + timedelta(days=14)
    )
    bad = service.call("GET", f"/projects/{project.slug}/certificates/expiry-histogram?weeks=0")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "weeks"


# -- PKCS#12 ------------------------------------------------------------------------------


def _issue(service: Service, project: Project, **extra: Any) -> dict[str, Any]:
    name = f"p12-{uuid.uuid4().hex[:6]}.example.test"
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": name, **extra},
    )
    return service.wait_for(project.slug, created["id"], ("issued",))


def test_pkcs12_admin_only_audited_and_opens_with_its_password(
    service: Service, project: Project
) -> None:
    p = project.slug
    cert = _issue(service, project)
    url = f"/projects/{p}/certificates/{cert['id']}/certificate.p12"
    password = "a good p12 passphrase"

    for role in ("operator", "viewer", "approver"):
        email = f"{role}-{uuid.uuid4().hex[:6]}@example.test"
        service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": role})
        r = service.call("POST", url, token=service.token_for(email), json={"password": password})
        assert r.status_code == 403, r.text
    outsider = service.token_for(f"out-{uuid.uuid4().hex[:6]}@example.test")
    assert service.call("POST", url, token=outsider, json={"password": password}).status_code == 404

    for body, field in (
        ({"password": "short"}, "password"),
        ({}, "password"),
        ({"password": "long enough", "extra": 1}, "extra"),
        ({"password": "nul\x00inside-it"}, "password"),  # OpenSSL would stop at the NUL
        ({"password": "tab\tinside-it"}, "password"),
    ):
        r = service.call("POST", url, json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]]
        assert "short" not in r.text or field != "password"  # the password is not echoed
        assert "inside-it" not in r.text
        if "inside-it" in str(body):
            assert "control characters" in r.json()["errors"][0]["message"]
    exported = [e for e in service.timeline(p, cert["id"])["events"] if e["type"] == "key.exported"]
    assert exported == []  # refusals export nothing

    r = service.call("POST", url, json={"password": password})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-pkcs12"
    assert r.headers["cache-control"] == "no-store"
    assert f'filename="{cert["common_name"]}.p12"' in r.headers["content-disposition"]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(r.content, b"not the password")
    key, leaf, cas = pkcs12.load_key_and_certificates(r.content, password.encode())
    assert key is not None and leaf is not None

    key_pem = service.call("GET", f"/projects/{p}/certificates/{cert['id']}/key.pem").text
    cert_pem = service.call("GET", f"/projects/{p}/certificates/{cert['id']}/cert.pem").text
    chain_pem = service.call("GET", f"/projects/{p}/certificates/{cert['id']}/chain.pem").text
    assert key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) == serialization.load_pem_private_key(key_pem.encode(), None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert leaf == x509.load_pem_x509_certificate(cert_pem.encode())
    assert cas == x509.load_pem_x509_certificates(chain_pem.encode())

    events = service.timeline(p, cert["id"])["events"]
    p12 = [e for e in events if e["type"] == "key.exported" and e["detail"].get("format")]
    assert len(p12) == 1
    assert p12[0]["actor"] == "admin@example.test"
    serial = cert["current"]["serial"]
    assert p12[0]["detail"] == {"version": 1, "serial": serial, "format": "pkcs12"}
    assert password not in str(events)


def test_pkcs12_of_a_byo_csr_certificate_is_404_saying_why(
    service: Service, project: Project
) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    name = f"byo-{uuid.uuid4().hex[:6]}.example.test"
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "csr_pem": csr},
    )
    service.wait_for(project.slug, created["id"], ("issued",))
    r = service.call(
        "POST",
        f"/projects/{project.slug}/certificates/{created['id']}/certificate.p12",
        json={"password": "long enough password"},
    )
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "own CSR" in r.json()["detail"]


def test_huge_and_zero_integers_in_paths_and_queries_are_422(
    service: Service, project: Project
) -> None:
    (cert_id,) = _seed_names(service, project, [["big.example.test"]])
    base = f"/projects/{project.slug}/certificates"
    for seq in ("9223372036854775808", "0", "-1", "99999999999999999999999999"):
        r = service.call("GET", f"{base}/{cert_id}/versions/{seq}/cert.pem")
        assert r.status_code == 422, (seq, r.text)
        assert r.json()["errors"][0]["field"] == "seq"
    r = service.call("GET", f"{base}/{cert_id}/versions/2147483647/cert.pem")
    assert r.status_code == 404, r.text  # in range, no such version
    for query in ({"limit": "9223372036854775808"}, {"limit": "0"}):
        r = service.call("GET", base, params=query)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit", r.text
    r = service.call("GET", f"{base}/expiry-histogram", params={"weeks": "9223372036854775808"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "weeks", r.text


@pytest.mark.parametrize("q", ["api.example", "x_1"])
def test_search_reads_its_index(service: Service, project: Project, q: str) -> None:
    """The search expression is the one migration 0011 indexed: PostgreSQL's plan reads the
    trigram index (sequential scans off, so a tiny table does not hide a mismatch), and
    SQLite's reads the FTS5 trigram table."""
    from sqlalchemy import text

    from certautopilot.certificates import inventory

    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            dialect = engine.dialect.name
            query = (
                select(Certificate.id).where(inventory._names_contain(dialect, q))
                if dialect == "postgresql"
                else inventory.fts_ids_query(q)
            )
            compiled = query.compile(engine)
            conn = session.connection()
            if dialect == "postgresql":
                session.execute(text("SET LOCAL enable_seqscan = off"))
                explain, index = "EXPLAIN", "ix_certificates_names_trgm"
            else:
                explain, index = "EXPLAIN QUERY PLAN", "certificate_names_fts VIRTUAL TABLE INDEX"
            params: Any = compiled.params
            if compiled.positional:  # SQLite: ? placeholders
                params = tuple(params[name] for name in compiled.positiontup or ())
            rows = conn.exec_driver_sql(f"{explain} {compiled}", params).all()
            plan = "\n".join(str(row[-1]) for row in rows)
    finally:
        engine.dispose()
    assert index in plan, plan


def test_search_follows_renamed_and_deleted_certificates(
    service: Service, project: Project
) -> None:
    """The search index is kept by the database: a rename or delete made in SQL shows."""
    from sqlalchemy import delete, update

    kept, gone = _seed_names(service, project, [["old-name.example.test"], ["bye.example.test"]])

    def found(q: str) -> set[str]:
        page = service.ok("GET", f"/projects/{project.slug}/certificates", params={"q": q})
        return {c["id"] for c in page["items"]}

    assert found("old-name") == {kept} and found("bye.ex") == {gone}
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            session.execute(
                update(Certificate)
                .where(Certificate.id == kept)
                .values(names=["new-name.example.test", "alt.example.test"])
            )
            session.execute(delete(Certificate).where(Certificate.id == gone))
    finally:
        engine.dispose()
    assert found("old-name") == set() and found("bye.ex") == set()
    assert found("new-name") == found("alt.ex") == {kept}
