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
