"""Hosts and URLs a user types are refused with an error on their field, never a crash."""

from __future__ import annotations

import pytest

from certautopilot.config import Settings
from certautopilot.errors import InvalidInput
from certautopilot.netguard import check_host, check_url


@pytest.mark.parametrize(
    "host",
    ["a" * 64 + ".example.com", "0" * 250, "bad\x00host", "x..y"],
)
def test_a_malformed_host_name_is_invalid_input(host: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_host(host, field="email.host")
    assert caught.value.errors[0][0] == "email.host"


@pytest.mark.parametrize("url", ["https://[::1/dir", "https://" + "a" * 64 + ".test/dir"])
def test_a_malformed_url_is_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_url(url, field="acme.directory_url")
    assert caught.value.errors[0][0] == "acme.directory_url"


def _reach(networks: str) -> Settings:
    return Settings.from_env({"CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS": networks})


def test_loopback_needs_the_operator() -> None:
    with pytest.raises(InvalidInput, match="non-public address"):
        check_host("127.0.0.1", field="rfc2136.server", reach=_reach("").reach)
    check_host("127.0.0.1", field="rfc2136.server", reach=_reach("127.0.0.0/8").reach)


@pytest.mark.parametrize("url", ["https://ops:s3cret@ca.example/dir", "https://token@ca.example/"])
def test_credentials_in_a_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_url(url, field="webhook.url", require_https=False)
    assert caught.value.errors[0][0] == "webhook.url"
    assert "credentials" in caught.value.errors[0][1]
    assert "s3cret" not in str(caught.value) and "token" not in str(caught.value)


def test_a_name_with_one_refused_address_among_public_ones_is_refused() -> None:
    from certautopilot.netguard import refusal

    allowed = _reach("127.0.0.0/8").reach
    assert refusal("mixed.test", ["93.184.216.34", "127.0.0.1"], allowed) is None
    why = refusal("mixed.test", ["93.184.216.34", "169.254.169.254"], allowed)
    assert why is not None and "169.254.169.254" in why and "mixed.test is refused" in why
    assert refusal("fe80::1%eth0", ["fe80::1%eth0"], allowed) is not None
