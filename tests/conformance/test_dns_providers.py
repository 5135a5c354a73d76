"""One set of cases for every DNS provider implementation, each against a real server.

Implementations: the in-memory twin; RFC 2136 against the lab's BIND and against Knot;
dns-lexicon's powerdns against PowerDNS Authoritative; dns-lexicon's route53 against moto's
Route 53 API (moto serves no DNS, so its cases read records through the API only).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certautopilot.dns.providers.lexicon import providers as lexicon_providers
from certautopilot.dns.providers.memory import MemoryConfig, MemoryDNS, MemoryProvider, register
from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot.errors import DNSError, InvalidInput
from certautopilot_lab import LabInfo, axfr_txt
from tests.integration.dns_servers import Knot, MotoRoute53, PowerDNS, txt_at

WRONG = "wrong-credential-d3JvbmctLXdyb25n"


@dataclass
class Backend:
    """One provider implementation wired to its server, plus how to look behind its back."""

    make: Callable[[dict[str, Any]], Any]  # settings changes -> provider
    zone: str
    records: Callable[[], list[tuple[str, str]]]  # the server's own listing (AXFR or API)
    dns: tuple[str, int] | None  # where to query TXT directly, when the server answers DNS
    secrets: list[str]
    wrong: dict[str, Any] | None  # settings that make the credential wrong
    wrong_field: str | None  # the settings field a wrong credential is reported on
    no_check_reason: str | None = None

    def name(self, label: str) -> str:
        return f"_acme-challenge.{label}-{secrets.token_hex(4)}.{self.zone}"

    def listed(self, provider: Any, fqdn: str) -> set[str]:
        if hasattr(provider, "list_txt"):
            return set(provider.list_txt(self.zone, fqdn))
        return {value for owner, value in self.records() if owner == fqdn}


def _needs(*binaries: str) -> None:
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    missing = [b for b in binaries if shutil.which(b, path=path) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (make system-packages)")


def _lexicon(name: str) -> type:
    return next(cls for cls in lexicon_providers() if cls.name == name)


@pytest.fixture(scope="session")
def powerdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDNS]:
    _needs("pdns_server")
    server = PowerDNS(tmp_path_factory.mktemp("pdns")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knot]:
    _needs("knotd")
    server = Knot(tmp_path_factory.mktemp("knot")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_route53() -> Iterator[MotoRoute53]:
    server = MotoRoute53().start()
    # boto3 has no endpoint option in lexicon's route53 provider: AWS_ENDPOINT_URL, set for
    # this test process only, points it at moto.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield server
    server.stop()


def _memory() -> Backend:
    server = MemoryDNS(token=secrets.token_urlsafe(16))
    server.add_zone("example.net")
    account = f"acct-{secrets.token_hex(4)}"
    register(account, server)

    def make(changes: dict[str, Any]) -> MemoryProvider:
        return MemoryProvider(
            MemoryConfig(**{"account": account, "token": server.token, **changes})
        )

    def records() -> list[tuple[str, str]]:
        return sorted((o, v) for o, vs in server.zones["example.net"].items() for v in vs)

    return Backend(
        make, "example.net", records, None, [server.token], {"token": WRONG}, "settings.token"
    )


def _rfc2136(settings: dict[str, Any], zone: str, records: Any, dns: tuple[str, int]) -> Backend:
    def make(changes: dict[str, Any]) -> RFC2136Provider:
        return RFC2136Provider(RFC2136Config.model_validate({**settings, **changes}))

    wrong = {"tsig_secret": "d3JvbmctLXdyb25nLS13cm9uZy0td3JvbmctLXdyb25nLS0="}
    return Backend(
        make,
        zone,
        records,
        dns,
        [settings["tsig_secret"]],
        wrong,
        "settings.tsig_secret",
        no_check_reason="RFC2136Provider has no check() on this branch",
    )


@pytest.fixture(params=["memory", "rfc2136-bind", "rfc2136-knot", "powerdns", "route53-moto"])
def backend(request: pytest.FixtureRequest) -> Backend:
    kind = request.param
    if kind == "memory":
        return _memory()
    if kind == "rfc2136-bind":
        _needs("named", "pebble")
        lab: LabInfo = request.getfixturevalue("lab")
        settings = {
            "server": lab.dns_host,
            "port": lab.dns_port,
            "tsig_name": lab.tsig_name,
            "tsig_algorithm": lab.tsig_algorithm,
            "tsig_secret": lab.tsig_secret,
            "timeout_seconds": 3,
        }
        return _rfc2136(
            settings,
            "example.test",
            lambda: axfr_txt(lab, "example.test"),
            (lab.dns_host, lab.dns_port),
        )
    if kind == "rfc2136-knot":
        server: Knot = request.getfixturevalue("knot")
        return _rfc2136(
            server.rfc2136_settings(), server.zone, server.axfr_txt, ("127.0.0.1", server.port)
        )
    if kind == "powerdns":
        pdns: PowerDNS = request.getfixturevalue("powerdns")
        cls = _lexicon("powerdns")
        return Backend(
            lambda changes: cls(cls.config_model(**pdns.settings(**changes))),
            pdns.zone,
            pdns.txt_records,
            ("127.0.0.1", pdns.dns_port),
            [pdns.api_key],
            {"auth_token": WRONG},
            "settings.auth_token",
        )
    moto: MotoRoute53 = request.getfixturevalue("moto_route53")
    r53 = _lexicon("route53")
    return Backend(
        lambda changes: r53(r53.config_model(**{**moto.settings(), **changes})),
        moto.zone,
        moto.txt_records,
        None,
        [moto.settings()["auth_access_secret"]],
        None,  # moto accepts any access key: a wrong credential cannot be shown here
        None,
    )


def _visible(backend: Backend, fqdn: str) -> set[str] | None:
    return txt_at(*backend.dns, fqdn) if backend.dns else None


def test_publish_then_list_shows_it(backend: Backend) -> None:
    provider = backend.make({})
    fqdn = backend.name("one")
    provider.publish_txt(backend.zone, fqdn, "token-1", 60)
    assert backend.listed(provider, fqdn) == {"token-1"}
    assert (fqdn, "token-1") in backend.records()
    if backend.dns:
        assert _visible(backend, fqdn) == {"token-1"}
    provider.remove_txt(backend.zone, fqdn, "token-1")


def test_two_values_at_one_name_and_removing_one_keeps_the_other(backend: Backend) -> None:
    provider = backend.make({})
    fqdn = backend.name("two")  # wildcard + apex share this one name
    provider.publish_txt(backend.zone, fqdn, "apex-value", 60)
    provider.publish_txt(backend.zone, fqdn, "wildcard-value", 60)
    assert backend.listed(provider, fqdn) == {"apex-value", "wildcard-value"}
    if backend.dns:
        assert _visible(backend, fqdn) == {"apex-value", "wildcard-value"}
    provider.remove_txt(backend.zone, fqdn, "apex-value")
    assert backend.listed(provider, fqdn) == {"wildcard-value"}
    if backend.dns:
        assert _visible(backend, fqdn) == {"wildcard-value"}
    provider.remove_txt(backend.zone, fqdn, "wildcard-value")


def test_publish_twice_is_once_and_remove_twice_is_fine(backend: Backend) -> None:
    provider = backend.make({})
    fqdn = backend.name("idem")
    provider.publish_txt(backend.zone, fqdn, "same", 60)
    provider.publish_txt(backend.zone, fqdn, "same", 60)
    assert [v for o, v in backend.records() if o == fqdn] == ["same"]
    provider.remove_txt(backend.zone, fqdn, "same")
    provider.remove_txt(backend.zone, fqdn, "same")
    provider.remove_txt(backend.zone, backend.name("never"), "never-published")


def test_a_lone_value_with_a_short_ttl_is_removed(backend: Backend) -> None:
    """Route 53 deletes a record set only with its own TTL (lexicon sends its default)."""
    provider = backend.make({})
    fqdn = backend.name("lone")
    provider.publish_txt(backend.zone, fqdn, "lone-value", 60)
    provider.remove_txt(backend.zone, fqdn, "lone-value")
    assert backend.listed(provider, fqdn) == set()
    assert [owner for owner, _ in backend.records() if owner == fqdn] == []


def test_remove_leaves_nothing_behind(backend: Backend) -> None:
    provider = backend.make({})
    fqdn = backend.name("gone")
    for value in ("a-value", "b-value"):
        provider.publish_txt(backend.zone, fqdn, value, 60)
    for value in ("a-value", "b-value"):
        provider.remove_txt(backend.zone, fqdn, value)
    assert backend.listed(provider, fqdn) == set()
    assert [owner for owner, _ in backend.records() if owner == fqdn] == []
    if backend.dns:
        assert _visible(backend, fqdn) == set()


def test_check_passes_with_good_credentials(backend: Backend) -> None:
    provider = backend.make({})
    if not hasattr(provider, "check"):
        pytest.skip(backend.no_check_reason or "no check()")
    provider.check(backend.zone)


def test_wrong_credential(backend: Backend) -> None:
    if backend.wrong is None:
        pytest.skip("moto's Route 53 accepts any access key, so a wrong one is not refused")
    provider = backend.make(backend.wrong)
    fqdn = backend.name("wrong")
    if hasattr(provider, "check"):
        with pytest.raises(InvalidInput) as refused:
            provider.check(backend.zone)
        assert [field for field, _ in refused.value.errors] == [backend.wrong_field]
        _no_secret(backend, str(refused.value), repr(refused.value), str(refused.value.errors))
    with pytest.raises(DNSError) as failed:
        provider.publish_txt(backend.zone, fqdn, "v", 60)
    assert not isinstance(failed.value, InvalidInput)
    _no_secret(backend, str(failed.value), repr(failed.value))
    assert failed.value.__cause__ is None  # no chained exception carrying request details


def test_no_secret_in_str_or_repr(backend: Backend) -> None:
    provider = backend.make({})
    config = getattr(provider, "_config", None)
    _no_secret(backend, str(provider), repr(provider), repr(config))


def test_a_name_outside_the_zone_or_a_missing_zone_is_a_dns_error(backend: Backend) -> None:
    provider = backend.make({})
    with pytest.raises(DNSError) as failed:
        provider.publish_txt("no-such-zone.org", "_acme-challenge.no-such-zone.org", "v", 60)
    _no_secret(backend, str(failed.value))


def test_lexicon_writes_in_the_zone_it_is_given_not_a_guessed_one(powerdns: PowerDNS) -> None:
    """A sub-zone: lexicon's public-suffix guess would say lexlab.net; the zone given wins."""
    sub = f"z{secrets.token_hex(3)}.{powerdns.zone}"
    powerdns.add_zone(sub)
    cls = _lexicon("powerdns")
    provider = cls(cls.config_model(**powerdns.settings()))
    fqdn = f"_acme-challenge.www.{sub}"
    provider.publish_txt(sub, fqdn + ".", "in-the-sub-zone", 60)
    assert powerdns.txt_in(sub) == [(fqdn, "in-the-sub-zone")]
    assert fqdn not in [owner for owner, _ in powerdns.txt_records()]
    assert txt_at("127.0.0.1", powerdns.dns_port, fqdn) == {"in-the-sub-zone"}
    provider.remove_txt(sub, fqdn, "in-the-sub-zone")
    assert powerdns.txt_in(sub) == []


def _no_secret(backend: Backend, *texts: str) -> None:
    for text in texts:
        for secret in [*backend.secrets, WRONG]:
            assert secret not in text, text


def test_every_lexicon_provider_is_a_plugin_with_described_fields() -> None:
    classes = {cls.name: cls for cls in lexicon_providers()}
    assert len(classes) > 80
    assert not {"rfc2136", "manual", "auto"} & set(classes)
    assert {name for name, cls in classes.items() if cls.tested} == {"powerdns", "route53"}
    powerdns = classes["powerdns"].config_model
    assert powerdns.model_json_schema()["required"] == ["auth_token", "pdns_server"]
    assert powerdns.model_fields["auth_token"].description == "specify token for authentication"
    assert all(cls.manual is False for cls in classes.values())


@pytest.mark.parametrize(
    ("provider", "field", "secret"),
    [
        ("powerdns", "auth_token", True),
        ("powerdns", "pdns_server", False),
        ("route53", "auth_access_key", True),
        ("route53", "auth_access_secret", True),
        ("route53", "zone_id", False),
        ("cloudflare", "auth_token", True),
        ("cloudflare", "auth_username", False),
        ("ovh", "auth_application_secret", True),
        ("ovh", "auth_entrypoint", False),
    ],
)
def test_secret_rule(provider: str, field: str, secret: bool) -> None:
    from certautopilot.plugins import secret_fields

    model = next(c for c in lexicon_providers() if c.name == provider).config_model
    assert field in model.model_fields
    assert (field in secret_fields(model)) is secret


def test_loading_every_lexicon_provider_is_quick(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    code = (
        "import time; t = time.perf_counter();"
        "from certautopilot.dns.providers.lexicon import providers; n = len(providers());"
        "import sys; print(n, time.perf_counter() - t, 'lexicon' in sys.modules)"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    count, seconds, imported = out.stdout.split()
    assert int(count) > 80
    assert imported == "False"  # lexicon and the providers' SDKs load on first use only
    assert float(seconds) < 3.0, out.stdout  # measured 0.6 s here (2 cores, busy)
    assert time.perf_counter() - started < 10


def test_the_lexicon_entry_point_loads_through_the_plugin_registry() -> None:
    from importlib.metadata import EntryPoint

    from certautopilot.plugins import Family, Registry

    value = "certautopilot.dns.providers.lexicon:providers"
    registry = Registry(lambda group: [EntryPoint(name="lexicon", value=value, group=group)])
    plugins = registry.family(Family.DNS_PROVIDERS)
    assert len(plugins) > 80
    powerdns = plugins["powerdns"]
    assert powerdns.title == "PowerDNS"
    assert powerdns.secrets == ("auth_token",)
    with pytest.raises(InvalidInput) as missing:
        powerdns.parse_config({"pdns_server": "http://127.0.0.1:1"}, field_prefix="settings")
    assert [field for field, _ in missing.value.errors] == ["settings.auth_token"]
    schema = powerdns.config_schema()
    assert schema["properties"]["auth_token"]["secret"] is True


def test_fields_read_from_source_match_lexicons_own_parsers() -> None:
    """The fast source reading gives exactly the options lexicon's imported parsers give."""
    import argparse
    import importlib

    for cls in lexicon_providers():
        module = importlib.import_module(f"lexicon._private.providers.{cls.name}")
        parser = argparse.ArgumentParser(add_help=False)
        module.Provider.configure_parser(parser)
        options = {a.dest.replace("-", "_"): a.help for a in parser._actions if a.option_strings}
        fields = cls.config_model.model_fields
        assert set(fields) == set(options), cls.name
        for name, help_text in options.items():
            assert fields[name].description == ((help_text or "").strip() or None), (cls.name, name)
