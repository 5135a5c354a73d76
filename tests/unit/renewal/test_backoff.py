from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certautopilot.renewal.backoff import BackoffPolicy, delay_seconds, next_attempt_at

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = BackoffPolicy(base_seconds=300, cap_seconds=3600, max_attempts=5)


def test_grows_exponentially_with_jitter_in_the_upper_half() -> None:
    for attempt in range(1, 5):
        raw = min(3600, 300 * 2 ** (attempt - 1))
        wait = delay_seconds(attempt, policy=POLICY, key="c1")
        assert raw / 2 <= wait <= raw


def test_jitter_spreads_certificates_but_is_deterministic() -> None:
    waits = {delay_seconds(1, policy=POLICY, key=f"c{i}") for i in range(50)}
    assert len(waits) > 40
    assert delay_seconds(2, policy=POLICY, key="x") == delay_seconds(2, policy=POLICY, key="x")


def test_capped() -> None:
    assert delay_seconds(20, policy=POLICY, key="c1") <= 3600


def test_bounded_attempts() -> None:
    assert next_attempt_at(NOW, 4, policy=POLICY, key="c1") is not None
    assert next_attempt_at(NOW, 5, policy=POLICY, key="c1") is None


def test_retry_after_is_a_floor() -> None:
    at = next_attempt_at(NOW, 1, policy=POLICY, key="c1", retry_after_seconds=7200)
    assert at == NOW + timedelta(seconds=7200)
    short = next_attempt_at(NOW, 1, policy=POLICY, key="c1", retry_after_seconds=1)
    assert short is not None and short > NOW + timedelta(seconds=149)
