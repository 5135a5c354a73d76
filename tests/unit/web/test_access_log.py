"""The access log never shows a one-time sign-in link's token."""

from __future__ import annotations


def test_the_access_log_hides_a_sign_in_links_token() -> None:
    import logging

    from certautopilot.web.router import HideInvitationTokens

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/invite/s3cret-token", "1.1", 200),
        None,
    )
    assert HideInvitationTokens().filter(record)
    assert "s3cret" not in record.getMessage() and "/invite/…" in record.getMessage()
