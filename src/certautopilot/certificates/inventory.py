"""The inventory read model: filtered, sorted, keyset-paged lists and the expiry histogram.

Paging is keyset paging on ``(sort key, id)``: a cursor carries the sort it was handed out
for and the last row's key and id, and the next page is every row strictly after that
pair in the sort's order. Rows inserted or changed between two pages never make a page
repeat or skip a row that stayed put, and each page costs one index range scan
(``ix_certificates_project_<key>`` on ``(project_id, key, id)``) whatever its depth.

``not_after`` is empty until a certificate is first issued; such rows sort as if they
expired after every date: last when ascending, first when descending (PostgreSQL's own
order for NULLs, so its index serves both directions).

Search (``q``) of 3 characters or more matches a substring of one of the certificate's
names; a shorter one matches the start of the common name (see ``_names_contain``). Both
match literally: ``%``,
``_`` and ``\\`` in ``q`` are escaped for LIKE, and the match runs over each name of the
``names`` JSON array (``json_each`` on SQLite, ``json_array_elements_text`` on PostgreSQL),
never over the array's JSON text, where ``"``, ``[`` or ``,`` would match every row.

The expiry histogram reads per-day counts the database keeps (migration 0011), so a page
view costs a few hundred small rows, not a scan of the project's certificates.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    table,
    tuple_,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from certautopilot.certificates.models import Certificate, CertificateExpiryCount
from certautopilot.certificates.states import CertStatus
from certautopilot.errors import InvalidInput

STATUSES = tuple(CertStatus)
SORT_KEYS: dict[str, InstrumentedAttribute[Any]] = {
    "common_name": Certificate.common_name,
    "not_after": Certificate.not_after,
    "status": Certificate.status,
    "created_at": Certificate.created_at,
}
NULLABLE = {"not_after"}
DEFAULT_SORT = "-created_at"
SORTS = tuple(s for k in SORT_KEYS for s in (k, "-" + k))
MAX_WEEKS = 52


def parse_sort(sort: str | None) -> tuple[str, bool]:
    """``"name"`` or ``"-name"`` → (key, descending)."""
    sort = sort or DEFAULT_SORT
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise InvalidInput.field(
            "sort", f"must be one of {', '.join(SORT_KEYS)}, with '-' in front for descending"
        )
    return key, sort.startswith("-")


def _encode_cursor(sort: str, key: Any, cert_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps({"s": sort, "k": value, "i": cert_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        given, value, cert_id = raw["s"], raw["k"], str(raw["i"])
        if given == sort and sort.removeprefix("-") in ("not_after", "created_at"):
            value = None if value is None else datetime.fromisoformat(value)
        elif value is not None and not isinstance(value, str):
            raise TypeError("key")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInput.field("cursor", "is not a cursor this service handed out") from exc
    if given != sort:
        raise InvalidInput.field(
            "cursor", f"was handed out for sort={given}; ask for page one again with sort={sort}"
        )
    return value, cert_id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_literal(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards escaped (``ESCAPE '\\'``)."""
    return f"%{_escape_like(text)}%"


def glob_literal(text: str) -> str:
    """A GLOB pattern matching ``text`` anywhere: ``*``, ``?`` and ``[`` as classes."""
    escaped = "".join(f"[{c}]" if c in "*?[" else c for c in text)
    return f"*{escaped}*"


def like_prefix(text: str) -> str:
    """A LIKE pattern matching values that start with ``text``, wildcards escaped."""
    return f"{_escape_like(text)}%"


NAMES_SEPARATOR = "\n"
_SEARCH_ROWS = table("certificate_search_rows", column("rowid"), column("certificate_id"))
_NAMES_FTS = table("certificate_names_fts", column("rowid"), column("names"))
#: Trigrams need 3 characters: a shorter ``q`` matches the start of the common name
#: (``ix_certificates_project_common_name_prefix``, a btree range) instead of any substring.
MIN_SUBSTRING = 3


#: SQLite: a ``q`` with at least this many FTS matches is filtered along the sort's index
#: instead (matches are dense there, so a page fills fast), not read as a list of ids.
FTS_DENSE = 2000


def fts_ids_query(text: str) -> Select[tuple[Any]]:
    """SQLite: the ids of (up to ``FTS_DENSE``) certificates whose names contain ``text``,
    driven from the FTS5 trigram match, then by key."""
    return select(_SEARCH_ROWS.c.certificate_id).where(
        _SEARCH_ROWS.c.rowid.in_(
            select(_NAMES_FTS.c.rowid)
            .where(_NAMES_FTS.c.names.op("GLOB")(glob_literal(text)))
            .limit(FTS_DENSE)
        )
    )


def _fts_ids(session: Session, text: str) -> list[str] | None:
    """The ids of the certificates whose names contain ``text`` (SQLite's FTS table), or
    None when there are ``FTS_DENSE`` or more of them."""
    ids = [str(i) for i in session.scalars(fts_ids_query(text))]
    return None if len(ids) >= FTS_DENSE else ids


def _prefix_range(text: str) -> ColumnElement[bool]:
    """SQLite: the common name starts with ``text``, as a range of its BINARY-collated index
    (byte order is code point order) plus the LIKE that makes it exact."""
    col = Certificate.common_name
    prefix = col.like(like_prefix(text), escape="\\")
    if ord(text[-1]) >= 0x10FFFF:
        return and_(col >= text, prefix)
    return and_(col >= text, col < text[:-1] + chr(ord(text[-1]) + 1), prefix)


def _names_contain(dialect: str, text: str, *, ids: list[str] | None = None) -> ColumnElement[bool]:
    """Some name of the certificate contains ``text`` (lower-case) as typed.

    On PostgreSQL the LIKE runs over ``certificate_names_text(names)`` (the names joined by
    a newline), the expression ``ix_certificates_names_trgm`` indexes with trigrams: a
    ``text`` without a newline matches that text exactly when it matches one name, since
    every newline in it lies between two names. Only a ``text`` with a newline also needs
    the per-name check. On SQLite the same joined text sits in an FTS5 trigram table,
    matched by GLOB (case-sensitive; names and ``q`` are lower-case): ``ids`` are the
    certificates it found, None when too many to list (then each row is checked)."""
    if len(text) < MIN_SUBSTRING:
        if dialect != "postgresql":
            return _prefix_range(text)
        return Certificate.common_name.like(like_prefix(text), escape="\\")
    pattern = like_literal(text)
    elements = (
        func.json_array_elements_text(Certificate.names)
        if dialect == "postgresql"
        else func.json_each(Certificate.names)
    ).table_valued("value")
    per_name = exists(
        select(literal(1)).select_from(elements).where(elements.c.value.like(pattern, escape="\\"))
    )
    if dialect != "postgresql" and ids is None:
        return per_name  # SQLite, a frequent q: checked row by row along the sort's index
    if dialect == "postgresql":
        joined = func.certificate_names_text(Certificate.names).like(pattern, escape="\\")
    else:  # SQLite: the ids the FTS5 trigram table found (``_fts_ids``), read by key
        joined = Certificate.id.in_(ids or [])
    return and_(joined, per_name) if NAMES_SEPARATOR in text else joined


def _after(key: str, desc: bool, value: Any, last_id: str) -> ColumnElement[bool]:
    """Rows strictly after (value, last_id) in the sort's order (NULLs after every value)."""
    col = SORT_KEYS[key]
    nullable = key in NULLABLE
    if value is None:  # only a nullable key: we are inside the NULL block
        if desc:  # NULLs first: the rest of the NULL block, then every dated row
            return or_(and_(col.is_(None), Certificate.id < last_id), col.is_not(None))
        return and_(col.is_(None), Certificate.id > last_id)
    pair = tuple_(col, Certificate.id)
    bound = tuple_(literal(value, col.type), literal(last_id, Certificate.id.type))
    if desc:
        return pair < bound
    return or_(pair > bound, col.is_(None)) if nullable else pair > bound


def list_certificates(
    session: Session,
    *,
    project_id: str,
    status: str | None = None,
    issuer_id: str | None = None,
    expiring_before: datetime | None = None,
    expiring_after: datetime | None = None,
    exclude_statuses: Sequence[str] = (),
    q: str | None = None,
    sort: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    managed: bool | None = None,
) -> tuple[list[Certificate], str | None]:
    """One page of the project's certificates and the cursor of the next (None at the end)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput.field("status", f"must be one of {', '.join(STATUSES)}")
    key, desc = parse_sort(sort)
    sort = ("-" if desc else "") + key
    col = SORT_KEYS[key]
    text = (q or "").strip().lower()
    dialect = session.get_bind().dialect.name
    ids = None
    if text and dialect != "postgresql" and len(text) >= MIN_SUBSTRING:
        ids = _fts_ids(session, text)
    in_project = Certificate.project_id == project_id
    if ids is not None:  # SQLite, few matches: read them by key and sort them, rather
        in_project = Certificate.project_id.concat("") == project_id  # than walk an index
    stmt = select(Certificate).where(in_project)
    if status:
        stmt = stmt.where(Certificate.status == status)
    if exclude_statuses:
        stmt = stmt.where(Certificate.status.not_in(list(exclude_statuses)))
    if issuer_id:
        stmt = stmt.where(Certificate.issuer_id == issuer_id)
    if managed is not None:
        stmt = stmt.where(Certificate.managed.is_(managed))
    if expiring_before is not None:
        stmt = stmt.where(Certificate.not_after < expiring_before)
    if expiring_after is not None:
        stmt = stmt.where(Certificate.not_after >= expiring_after)
    if text:
        stmt = stmt.where(_names_contain(dialect, text, ids=ids))
    if cursor:
        value, last_id = _decode_cursor(cursor, sort)
        stmt = stmt.where(_after(key, desc, value, last_id))
    if desc:
        order = [col.desc().nulls_first() if key in NULLABLE else col.desc(), Certificate.id.desc()]
    else:
        order = [col.asc().nulls_last() if key in NULLABLE else col.asc(), Certificate.id.asc()]
    rows = list(session.scalars(stmt.order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode_cursor(sort, getattr(last, key), last.id)
    return rows, next_cursor


# -- expiry histogram ----------------------------------------------------------------------


@dataclass(frozen=True)
class WeekCount:
    start: datetime
    end: datetime
    count: int


@dataclass(frozen=True)
class ExpiryHistogram:
    """Certificates (revoked ones left out) whose current version expires in each coming
    week: week 0 runs from ``now`` to the end of the seventh day counted from today
    (midnight UTC), week i from ``start + 7i days`` to ``start + 7(i+1) days``."""

    now: datetime
    weeks: list[WeekCount]
    expired: int
    later: int


def week_window(start: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The window of the histogram's week beginning ``start`` (a midnight UTC)."""
    return max(start, now), start + timedelta(days=7)


def expiry_histogram(
    session: Session,
    *,
    project_id: str,
    now: datetime,
    weeks: int = 12,
    issuer_id: str | None = None,
) -> ExpiryHistogram:
    """Counts per week from ``certificate_expiry_counts`` (one row per issuer and day of
    expiry, kept exact by the database's triggers), not from the certificates: the days
    before today are ``expired``, and today is split at ``now`` by counting today's
    certificates only (a range of the not_after index, at most one day's rows)."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput.field("weeks", f"must be between 1 and {MAX_WEEKS}")
    now = now.astimezone(UTC)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    edges = [day0 + timedelta(days=7 * (i + 1)) for i in range(weeks)]
    per_day = select(CertificateExpiryCount.day, func.sum(CertificateExpiryCount.n)).where(
        CertificateExpiryCount.project_id == project_id
    )
    expired_today = select(func.count()).where(
        Certificate.project_id == project_id,
        Certificate.not_after >= day0,
        Certificate.not_after < now,
        Certificate.status != CertStatus.REVOKED,
    )
    if issuer_id:
        per_day = per_day.where(CertificateExpiryCount.issuer_id == issuer_id)
        expired_today = expired_today.where(Certificate.issuer_id == issuer_id)
    today = day0.date()
    counts = [0] * weeks
    expired = later = 0
    for day, n in session.execute(per_day.group_by(CertificateExpiryCount.day)):
        offset = (date.fromisoformat(day) - today).days
        if offset < 0:
            expired += int(n)
        elif offset // 7 < weeks:
            counts[offset // 7] += int(n)
        else:
            later += int(n)
    gone = int(session.scalar(expired_today) or 0)  # today's, already past ``now``
    counts[0] -= gone
    expired += gone
    starts = [day0, *edges[:-1]]
    return ExpiryHistogram(
        now=now,
        weeks=[
            WeekCount(start=max(s, now), end=e, count=counts[i])
            for i, (s, e) in enumerate(zip(starts, edges, strict=True))
        ],
        expired=expired,
        later=later,
    )


# -- dashboard counts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    """What needs looking at, for the inventory's dashboard: certificates (revoked ones
    left out) already expired and expiring within 7 and 30 days, and failed ones."""

    expired: int
    within_7: int
    within_30: int
    failed: int


def attention(session: Session, *, project_id: str, now: datetime) -> Attention:
    """Four counts on the project's not_after and status indexes."""
    live = select(func.count()).where(
        Certificate.project_id == project_id, Certificate.status != CertStatus.REVOKED
    )

    def count(stmt: Select[Any]) -> int:
        return int(session.scalar(stmt) or 0)

    return Attention(
        expired=count(live.where(Certificate.not_after < now)),
        within_7=count(live.where(Certificate.not_after.between(now, now + timedelta(days=7)))),
        within_30=count(live.where(Certificate.not_after.between(now, now + timedelta(days=30)))),
        failed=count(
            select(func.count()).where(
                Certificate.project_id == project_id, Certificate.status == CertStatus.FAILED
            )
        ),
    )
