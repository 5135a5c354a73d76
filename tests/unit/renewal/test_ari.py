"""RFC 9773 (ACME Renewal Information): its section 4.1 certificate identifier example and
its section 4.2 renewalInfo response example, then the window choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certautopilot.errors import IssuerError
from certautopilot.renewal.ari import (
    DEFAULT_RETRY_AFTER,
    cert_id,
    choose_renewal_time,
    parse_renewal_info,
    parse_retry_after,
    serial_octets,
)

RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
RFC_RESPONSE = {
    "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
    "explanationURL": "https://acme.example.com/docs/ari",
}


def test_certificate_identifier_of_the_rfc_example() -> None:
    assert serial_octets(0x87654321) == bytes.fromhex("0087654321")
    assert cert_id(RFC_AKI, serial_octets(0x87654321)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_parses_the_rfc_response() -> None:
    info = parse_renewal_info(RFC_RESPONSE, "21600")
    assert info.start == datetime(2025, 1, 2, 4, tzinfo=UTC)
    assert info.end == datetime(2025, 1, 3, 4, tzinfo=UTC)
    assert info.explanation_url == "https://acme.example.com/docs/ari"
    assert info.retry_after_seconds == 21600


def test_retry_after_is_clamped_and_defaulted() -> None:
    assert parse_retry_after(None) == DEFAULT_RETRY_AFTER
    assert parse_retry_after("soon") == DEFAULT_RETRY_AFTER
    assert parse_retry_after("1") == 60
    assert parse_retry_after(str(10 * 86400)) == 86400


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}},
        {"suggestedWindow": {"start": "yesterday", "end": "2025-01-03T04:00:00Z"}},
        {"suggestedWindow": {"start": "2025-01-03T04:00:00Z", "end": "2025-01-02T04:00:00Z"}},
    ],
)
def test_invalid_windows_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(IssuerError):
        parse_renewal_info(body)


def test_choice_is_uniform_inside_the_window() -> None:
    info = parse_renewal_info(RFC_RESPONSE)
    before = datetime(2025, 1, 1, tzinfo=UTC)
    assert choose_renewal_time(info, now=before, unit=0.0) == info.start
    assert choose_renewal_time(info, now=before, unit=0.5) == info.start + timedelta(hours=12)
    assert info.start <= choose_renewal_time(info, now=before, unit=0.999999) < info.end


def test_window_already_open_or_past() -> None:
    info = parse_renewal_info(RFC_RESPONSE)
    inside = info.start + timedelta(hours=20)
    chosen = choose_renewal_time(info, now=inside, unit=0.5)
    assert inside <= chosen == inside + timedelta(hours=2)
    after = info.end + timedelta(minutes=1)
    assert choose_renewal_time(info, now=after, unit=0.7) == after


def test_a_window_open_since_before_issuance_means_renew_now() -> None:
    """acme2certifier's ``renewal_force`` (and a CA's incident window): the window began
    before the certificate existed, so the certificate is replaced at once."""
    info = parse_renewal_info(RFC_RESPONSE)
    now = info.start + timedelta(hours=1)
    issued = info.start + timedelta(minutes=30)
    assert choose_renewal_time(info, now=now, unit=0.9, not_before=issued) == now
    # a window that opens after issuance is still spread over what is left of it
    earlier = info.start - timedelta(days=30)
    chosen = choose_renewal_time(info, now=now, unit=0.5, not_before=earlier)
    assert chosen == now + (info.end - now) / 2
