from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certautopilot.renewal.budget import (
    Limits,
    check,
    deferral_is_news,
    names_key,
    registered_domain,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_registered_domain() -> None:
    assert registered_domain("a.b.example.com") == "example.com"
    assert registered_domain("*.shop.example.co.uk") == "example.co.uk"
    assert registered_domain("example.test.") == "example.test"


def test_defaults_follow_lets_encrypt() -> None:
    limits = Limits()
    assert limits.orders_per_account == 300 and limits.account_window == timedelta(hours=3)
    assert limits.certs_per_domain == 50 and limits.domain_window == timedelta(days=7)


def test_account_budget_holds_and_says_when_it_frees() -> None:
    limits = Limits(orders_per_account=10, share=1.0)
    times = [NOW - timedelta(minutes=10 * i) for i in range(10)]  # 0..90 min ago
    verdict = check(now=NOW, limits=limits, account_orders=times, domain_orders={})
    assert not verdict.allowed and verdict.reason and verdict.limit == "orders_per_account"
    assert verdict.retry_at == NOW - timedelta(minutes=90) + timedelta(hours=3)
    # orders older than the window do not count
    old = [NOW - timedelta(hours=4)] * 50
    assert check(now=NOW, limits=limits, account_orders=old, domain_orders={}).allowed


def test_domain_budget_keeps_a_share_for_people() -> None:
    limits = Limits(certs_per_domain=10, share=0.9)  # scheduled renewals stop at 9
    eight = [NOW - timedelta(days=1)] * 8
    assert check(now=NOW, limits=limits, account_orders=[], domain_orders={"a.test": eight}).allowed
    nine = [*eight, NOW - timedelta(hours=1)]
    verdict = check(now=NOW, limits=limits, account_orders=[], domain_orders={"a.test": nine})
    assert not verdict.allowed and "a.test" in (verdict.reason or "")
    assert verdict.limit == "certs_per_domain" and verdict.cap == 9
    assert verdict.retry_at == NOW - timedelta(days=1) + timedelta(days=7)


def test_duplicate_certificate_limit_counts_the_exact_set_of_names() -> None:
    limits = Limits()  # Let's Encrypt: 5 per exact set of names per 7 days
    assert limits.duplicate_certs == 5 and limits.duplicate_window == timedelta(days=7)
    five = [NOW - timedelta(days=6, hours=23), *[NOW - timedelta(hours=i) for i in range(1, 5)]]
    verdict = check(
        now=NOW, limits=limits, account_orders=[], domain_orders={}, duplicate_orders=five, share=1
    )
    assert not verdict.allowed and verdict.limit == "duplicate_certificates"
    assert verdict.cap == 5 and verdict.retry_at == five[0] + timedelta(days=7)
    # one of them leaves the window: the next one fits again
    later = five[0] + timedelta(days=7, seconds=1)
    assert check(
        now=later, limits=limits, account_orders=[], domain_orders={}, duplicate_orders=five,
        share=1,
    ).allowed  # fmt: skip
    # scheduled renewals keep a share for people: 4 of the 5
    four = five[1:]
    assert check(
        now=NOW, limits=limits, account_orders=[], domain_orders={}, duplicate_orders=four,
        share=1,
    ).allowed  # fmt: skip
    scheduled = check(
        now=NOW, limits=limits, account_orders=[], domain_orders={}, duplicate_orders=four
    )
    assert not scheduled.allowed and scheduled.cap == 4


def test_names_key_ignores_order_case_and_duplicates() -> None:
    assert names_key(["B.example.test", "a.example.test"]) == names_key(
        ["a.example.test", "b.example.test.", "a.example.test"]
    )
    assert names_key(["a.example.test"]) != names_key(["a.example.test", "b.example.test"])


def test_a_deferral_is_news_once_per_budget_window() -> None:
    window = timedelta(hours=3)
    assert deferral_is_news(None, now=NOW, window=window)  # first deferral
    for later in (timedelta(seconds=30), timedelta(hours=1), timedelta(hours=2, minutes=59)):
        assert not deferral_is_news(NOW, now=NOW + later, window=window)  # still waiting
    assert deferral_is_news(NOW, now=NOW + window, window=window)  # a new window
