"""The plugin registry's contract: classes or plugin sets from entry points, loud failures."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import ClassVar

import pytest
from pydantic import BaseModel

from certautopilot.errors import ConfigError, InvalidInput
from certautopilot.plugins import Family, Registry, secret_field, secret_fields


class TokenConfig(BaseModel):
    server: str
    token: str = secret_field(description="API token")


class AlphaProvider:
    name: ClassVar[str] = "alpha"
    title: ClassVar[str] = "Alpha DNS"
    config_model: ClassVar[type[BaseModel]] = TokenConfig
    capabilities: ClassVar[frozenset[str]] = frozenset({"wildcard"})


def _make(name: str) -> type:
    return type(name, (), {"name": name, "title": name.title(), "config_model": TokenConfig})


def provider_set() -> list[type]:
    return [_make("beta"), _make("gamma")]


class NoModel:
    name = "broken"


def _source(mapping: dict[str, list[EntryPoint]]):  # type: ignore[no-untyped-def]
    def source(group: str) -> Iterable[EntryPoint]:
        return mapping.get(group, [])

    return source


def _ep(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:{target}", group=Family.DNS_PROVIDERS.value)


def test_classes_and_plugin_sets_are_registered() -> None:
    reg = Registry(
        _source(
            {
                Family.DNS_PROVIDERS.value: [
                    _ep("alpha", "AlphaProvider"),
                    _ep("set", "provider_set"),
                ]
            }
        )
    )
    plugins = reg.family(Family.DNS_PROVIDERS)
    assert list(plugins) == ["alpha", "beta", "gamma"]
    alpha = plugins["alpha"]
    assert alpha.title == "Alpha DNS"
    assert alpha.capabilities == frozenset({"wildcard"})
    assert alpha.secrets == ("token",)
    assert alpha.config_schema()["properties"]["token"]["secret"] is True
    assert reg.family(Family.TARGETS) == {}


def test_unknown_name_is_a_field_error_listing_known_plugins() -> None:
    reg = Registry(_source({Family.DNS_PROVIDERS.value: [_ep("alpha", "AlphaProvider")]}))
    with pytest.raises(InvalidInput) as info:
        reg.get(Family.DNS_PROVIDERS, "nope", field="provider")
    assert info.value.errors == [("provider", "unknown dns_providers plugin 'nope' (known: alpha)")]


def test_settings_errors_name_the_field() -> None:
    reg = Registry(_source({Family.DNS_PROVIDERS.value: [_ep("alpha", "AlphaProvider")]}))
    plugin = reg.get(Family.DNS_PROVIDERS, "alpha")
    with pytest.raises(InvalidInput) as info:
        plugin.parse_config({"server": "x"}, field_prefix="settings")
    assert [f for f, _ in info.value.errors] == ["settings.token"]
    assert plugin.parse_config({"server": "x", "token": "t"}, field_prefix="settings")


@pytest.mark.parametrize(
    ("eps", "message"),
    [
        ([_ep("broken", "NoModel")], "needs a pydantic 'config_model'"),
        ([_ep("gone", "DoesNotExist")], "cannot be loaded"),
        ([_ep("a", "AlphaProvider"), _ep("b", "AlphaProvider")], "two dns_providers plugins"),
    ],
)
def test_a_broken_plugin_fails_loudly(eps: list[EntryPoint], message: str) -> None:
    reg = Registry(_source({Family.DNS_PROVIDERS.value: eps}))
    with pytest.raises(ConfigError, match=message):
        reg.family(Family.DNS_PROVIDERS)


def test_secret_fields_of_a_model_without_secrets() -> None:
    class Plain(BaseModel):
        host: str

    assert secret_fields(Plain) == ()


def test_secret_fields_stay_out_of_a_models_repr() -> None:
    """A config model in a log line or a traceback shows no secret (EAB HMAC, AD CS password)."""
    from certautopilot.issuers.adcs.schemas import AdcsIssuerIn
    from certautopilot.issuers.schemas import AcmeIssuerIn

    acme = AcmeIssuerIn(
        directory_url="https://ca.test/dir", eab_kid="kid", eab_hmac_key="hmac-s3cr3t"
    )
    adcs = AdcsIssuerIn.model_validate(
        {
            "url": "https://ca.test/certsrv",
            "templates": ["WebServer"],
            "auth": "basic",
            "username": "svc",
            "password": "pa55-s3cr3t",
        }
    )
    for model, secret in ((acme, "hmac-s3cr3t"), (adcs, "pa55-s3cr3t")):
        assert secret not in repr(model) and secret not in str(model)
    assert "kid" in repr(acme)  # the non-secret fields still show


def test_no_secret_reaches_a_validation_error_of_a_built_in_plugin() -> None:
    """A ValidationError's text (a log line, a DBOS step error) never shows the input."""
    from pydantic import ValidationError

    from certautopilot.plugins import registry

    for family in (Family.ISSUERS, Family.TARGETS, Family.NOTIFICATION_CHANNELS):
        for name, plugin in registry().family(family).items():
            for field in plugin.secrets:
                secret = "s3cr3t-" + "x" * 200_000  # too long for every secret field
                with pytest.raises(ValidationError) as raised:
                    plugin.config_model.model_validate({field: secret})
                assert "s3cr3t" not in str(raised.value), (name, field)
