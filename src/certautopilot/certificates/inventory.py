"""The inventory read model: filtered, sorted, keyset-paged lists and the expiry histogram.

Paging is keyset paging on ``(sort key, id)``: a cursor carries the sort it was handed out
for and the last row's key and id, and the next page is every row strictly after that
pair in the sort's order. Rows inserted or changed between two pages never make a page
repeat or skip a row that stayed put, and each page costs one index range scan
(``ix_certificates_project_<key>`` on ``(project_id, key, id)``) whatever its depth.

``not_after`` is empty until a certificate is first issued; such rows sort as if they
expired after every date: last when ascending, first when descending (PostgreSQL's own
order for NULLs, so its index serves both directions).

Search (``q``) matches a substring of one of the certificate's names, literally: ``%``,
``_`` and ``\\`` in ``q`` are escaped for LIKE, and the match runs over each name of the
``names`` JSON array (``json_each`` on SQLite, ``json_array_elements_text`` on PostgreSQL),
never over the array's JSON text, where ``"``, ``[`` or ``,`` would match every row.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from certautopilot.certificates.models import Certificate
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


def like_literal(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards escaped (``ESCAPE '\\'``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _names_contain(dialect: str, text: str) -> ColumnElement[bool]:
    """Some name of the certificate contains ``text`` (lower-case) as typed."""
    elements = (
        func.json_array_elements_text(Certificate.names)
        if dialect == "postgresql"
        else func.json_each(Certificate.names)
    ).table_valued("value")
    name = elements.c.value
    return exists(
        select(literal(1)).select_from(elements).where(name.like(like_literal(text), escape="\\"))
    )


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
) -> tuple[list[Certificate], str | None]:
    """One page of the project's certificates and the cursor of the next (None at the end)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput.field("status", f"must be one of {', '.join(STATUSES)}")
    key, desc = parse_sort(sort)
    sort = ("-" if desc else "") + key
    col = SORT_KEYS[key]
    stmt = select(Certificate).where(Certificate.project_id == project_id)
    if status:
        stmt = stmt.where(Certificate.status == status)
    if exclude_statuses:
        stmt = stmt.where(Certificate.status.not_in(list(exclude_statuses)))
    if issuer_id:
        stmt = stmt.where(Certificate.issuer_id == issuer_id)
    if expiring_before is not None:
        stmt = stmt.where(Certificate.not_after < expiring_before)
    if expiring_after is not None:
        stmt = stmt.where(Certificate.not_after >= expiring_after)
    if q and q.strip():
        stmt = stmt.where(_names_contain(session.get_bind().dialect.name, q.strip().lower()))
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
    """Counts per week from one aggregate (a CASE bucket over the not_after index range)."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput.field("weeks", f"must be between 1 and {MAX_WEEKS}")
    now = now.astimezone(UTC)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    edges = [day0 + timedelta(days=7 * (i + 1)) for i in range(weeks)]
    col = Certificate.not_after
    bucket = case(
        (col < now, -1),
        *((col < edge, i) for i, edge in enumerate(edges)),
        else_=weeks,
    )
    where = [
        Certificate.project_id == project_id,
        col.is_not(None),
        Certificate.status != CertStatus.REVOKED,
    ]
    if issuer_id:
        where.append(Certificate.issuer_id == issuer_id)
    inner = select(bucket.label("b")).where(*where).subquery()
    counts = {
        int(b): int(n)
        for b, n in session.execute(select(inner.c.b, func.count()).group_by(inner.c.b))
    }
    starts = [day0, *edges[:-1]]
    return ExpiryHistogram(
        now=now,
        weeks=[
            WeekCount(start=max(s, now), end=e, count=counts.get(i, 0))
            for i, (s, e) in enumerate(zip(starts, edges, strict=True))
        ],
        expired=counts.get(-1, 0),
        later=counts.get(weeks, 0),
    )
