"""RFC2136Config validation and the secret staying out of every message."""

from __future__ import annotations

import pydantic
import pytest

from certautopilot.dns.interfaces import DNSProvider
from certautopilot.dns.providers.manual import ManualProvider
from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot.errors import DNSError

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="


def config(**changes: object) -> RFC2136Config:
    fields: dict[str, object] = {
        "server": "127.0.0.1",
        "tsig_name": "acme-key.",
        "tsig_secret": SECRET,
    }
    fields.update(changes)
    return RFC2136Config.model_validate(fields)


def test_defaults() -> None:
    cfg = config()
    assert (cfg.port, cfg.tsig_algorithm, cfg.timeout_seconds) == (53, "hmac-sha256", 10.0)


@pytest.mark.parametrize(
    "changes",
    [
        {"port": 0},
        {"port": 65536},
        {"tsig_algorithm": "hmac-sha999"},
        {"tsig_secret": "not base64!!"},
        {"tsig_secret": ""},
        {"server": ""},
        {"timeout_seconds": 0},
        {"unknown": 1},
    ],
)
def test_rejects(changes: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        config(**changes)


def test_secret_never_in_repr_or_errors() -> None:
    bad = SECRET + "!"
    with pytest.raises(pydantic.ValidationError) as caught:
        config(tsig_secret=bad)
    assert bad not in str(caught.value)
    assert SECRET not in repr(config())
    assert SECRET not in repr(RFC2136Provider(config()))


def test_providers_satisfy_the_protocol() -> None:
    assert isinstance(RFC2136Provider(config()), DNSProvider)
    assert isinstance(ManualProvider(), DNSProvider)
    ManualProvider().publish_txt("example.test", "_acme-challenge.example.test", "v", 60)
    ManualProvider().remove_txt("example.test", "_acme-challenge.example.test", "v")


def test_name_outside_zone_is_refused_before_sending() -> None:
    provider = RFC2136Provider(config())
    with pytest.raises(DNSError, match="not inside zone"):
        provider.publish_txt("example.test", "_acme-challenge.example.org", "v", 60)


def test_unreachable_server_is_a_dns_error_without_secret() -> None:
    provider = RFC2136Provider(config(port=9, timeout_seconds=0.3))
    with pytest.raises(DNSError) as caught:
        provider.publish_txt("example.test", "_acme-challenge.example.test", "v", 60)
    assert SECRET not in str(caught.value)
