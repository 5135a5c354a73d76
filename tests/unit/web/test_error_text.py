"""Errors in the UI's words: raw exception text only behind "Details"."""

from __future__ import annotations

from certautopilot.web.common import split_error

POOL = (
    "HTTPSConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /hook "
    "(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f>'))"
)


def test_plain_words_stay_as_they_are() -> None:
    assert split_error("the TXT record is not visible yet") == (
        "the TXT record is not visible yet",
        "",
    )


def test_a_raw_exception_goes_behind_details() -> None:
    said, raw = split_error(POOL)
    assert said == "The connection or the remote service failed."
    assert raw == POOL


def test_the_words_before_a_raw_message_are_kept() -> None:
    said, raw = split_error("could not reach the webhook: " + POOL)
    assert said == "could not reach the webhook."
    assert "HTTPSConnectionPool" in raw and "HTTPSConnectionPool" not in said
