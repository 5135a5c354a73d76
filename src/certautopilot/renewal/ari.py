"""ACME Renewal Information (RFC 9773): certificate identifiers, responses, and the choice.

Pure: the caller fetches ``<renewalInfo>/<cert-id>`` and hands over the JSON body and the
``Retry-After`` header; :func:`choose_renewal_time` picks a uniformly random point inside
the suggested window (RFC 9773 section 4.2) from a random number the caller supplies.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from certautopilot.clock import as_utc
from certautopilot.errors import IssuerError

DEFAULT_RETRY_AFTER = 6 * 3600.0  # RFC 9773 4.3.3: absent Retry-After -> a few hours
MIN_RETRY_AFTER = 60.0
MAX_RETRY_AFTER = 24 * 3600.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def cert_id(authority_key_identifier: bytes, serial_der: bytes) -> str:
    """``base64url(AKI keyIdentifier) "." base64url(serial DER bytes)`` (RFC 9773 4.1).

    ``serial_der`` is the DER integer's content octets: a leading zero stays when the high
    bit is set (the RFC's example serial is ``00:87:65:43:21``)."""
    return f"{_b64url(authority_key_identifier)}.{_b64url(serial_der)}"


def serial_octets(serial: int) -> bytes:
    """The content octets of a positive DER INTEGER."""
    length = serial.bit_length() // 8 + 1
    return serial.to_bytes(length, "big")


@dataclass(frozen=True)
class RenewalInfo:
    start: datetime
    end: datetime
    explanation_url: str | None
    retry_after_seconds: float


def _when(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise IssuerError(f"renewalInfo: suggestedWindow.{field} is missing")
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError as exc:
        raise IssuerError(f"renewalInfo: suggestedWindow.{field} is not a date") from exc


def parse_retry_after(header: str | None) -> float:
    """Seconds, clamped to [1 min, 24 h]; absent or unreadable -> 6 h."""
    if header is None:
        return DEFAULT_RETRY_AFTER
    try:
        value = float(header.strip())
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return min(max(value, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def parse_renewal_info(body: dict[str, Any], retry_after: str | None = None) -> RenewalInfo:
    """Reads a renewalInfo response; an invalid window (end not after start) is an error
    the caller treats as "no ARI" (RFC 9773 4.2: clients MUST ignore it)."""
    window = body.get("suggestedWindow")
    if not isinstance(window, dict):
        raise IssuerError("renewalInfo: suggestedWindow is missing")
    start, end = _when(window.get("start"), "start"), _when(window.get("end"), "end")
    if end <= start:
        raise IssuerError("renewalInfo: suggestedWindow ends before it starts")
    url = body.get("explanationURL")
    return RenewalInfo(
        start=start,
        end=end,
        explanation_url=url if isinstance(url, str) else None,
        retry_after_seconds=parse_retry_after(retry_after),
    )


def choose_renewal_time(
    info: RenewalInfo, *, now: datetime, unit: float, not_before: datetime | None = None
) -> datetime:
    """A uniformly random point in the window (``unit`` in [0, 1)); a window that has
    already passed means "now" (RFC 9773 4.2). So does an open window that began before the
    certificate was even issued (``not_before``): the CA asks for this certificate to be
    replaced at once (an incident, acme2certifier's ``renewal_force``), not for a renewal
    spread over the rest of its window."""
    if info.end <= now:
        return now
    if not_before is not None and info.start <= min(now, not_before):
        return now
    start = max(info.start, now)
    return start + timedelta(seconds=(info.end - start).total_seconds() * unit)
