"""RFC2136Provider and the propagation check against the lab's BIND (session ``lab`` fixture)."""

from __future__ import annotations

import secrets
import shutil

import dns.resolver
import pytest

from certautopilot.dns.propagation import (
    Outcome,
    challenge_name,
    observe,
    resolve_nameservers,
    txt_visible,
    wait_for_txt,
)
from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot.errors import DNSError, InvalidInput, PropagationTimeout
from certautopilot_lab import LabInfo, axfr_txt

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        shutil.which("pebble") is None or shutil.which("named", path="/usr/sbin:/usr/bin") is None,
        reason="needs Debian packages pebble and bind9",
    ),
]


def provider(lab: LabInfo, **changes: object) -> RFC2136Provider:
    fields: dict[str, object] = {
        "server": lab.dns_host,
        "port": lab.dns_port,
        "tsig_name": lab.tsig_name,
        "tsig_algorithm": lab.tsig_algorithm,
        "tsig_secret": lab.tsig_secret,
        "timeout_seconds": 3,
    }
    fields.update(changes)
    return RFC2136Provider(RFC2136Config.model_validate(fields))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_publish_wait_remove(lab: LabInfo, transport: str) -> None:
    fqdn = challenge_name(f"*.{transport}-{secrets.token_hex(4)}.example.test")
    servers = [lab.dns_server]
    dns_provider = provider(lab, transport=transport)
    dns_provider.publish_txt("example.test", fqdn, "first value", 60)
    dns_provider.publish_txt("example.test", fqdn, "second", 60)
    dns_provider.publish_txt("example.test", fqdn, "second", 60)  # idempotent
    wait_for_txt(fqdn, "first value", servers, deadline_seconds=5)
    assert txt_visible(fqdn, "second", servers)
    assert not txt_visible(fqdn, "first", servers)  # exact values only

    dns_provider.remove_txt("example.test", fqdn, "first value")
    assert not txt_visible(fqdn, "first value", servers)
    assert txt_visible(fqdn, "second", servers)  # the other value stays
    dns_provider.remove_txt("example.test", fqdn, "second")
    dns_provider.remove_txt("example.test", fqdn, "second")  # idempotent
    assert not txt_visible(fqdn, "second", servers)
    assert not [owner for owner, _ in axfr_txt(lab, "example.test") if owner == fqdn]


def test_long_value_and_subzone(lab: LabInfo) -> None:
    fqdn = challenge_name(f"w{secrets.token_hex(3)}.sub.example.test")
    value = "x" * 300  # more than one 255-byte character-string
    provider(lab).publish_txt("sub.example.test.", fqdn + ".", value, 60)
    assert txt_visible(fqdn, value, [lab.dns_server])
    assert (fqdn, value) in axfr_txt(lab, "sub.example.test")
    provider(lab).remove_txt("sub.example.test", fqdn, value)
    assert (fqdn, value) not in axfr_txt(lab, "sub.example.test")


def test_wait_times_out_naming_the_silent_server(lab: LabInfo) -> None:
    fqdn = challenge_name(f"never-{secrets.token_hex(4)}.example.test")
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(fqdn, "v", [lab.dns_server], deadline_seconds=0.3)
    assert fqdn in str(caught.value)
    assert f"127.0.0.1:{lab.dns_port}: NXDOMAIN" in str(caught.value)


def test_observe_tells_what_bind_answers(lab: LabInfo) -> None:
    fqdn = challenge_name(f"obs-{secrets.token_hex(4)}.example.test")
    server = f"127.0.0.1:{lab.dns_port}"
    assert observe(fqdn, "v", lab.dns_server).summary() == f"{server}: NXDOMAIN"
    # The zone apex exists with SOA and NS but no TXT record.
    assert observe("example.test", "v", lab.dns_server).outcome is Outcome.NODATA
    # BIND refuses a name in a zone it does not serve.
    assert observe("_acme-challenge.example.org", "v", lab.dns_server).outcome is Outcome.REFUSED
    provider(lab).publish_txt("example.test", fqdn, "other", 60)
    try:
        seen = observe(fqdn, "v", lab.dns_server)
        assert seen.summary() == f'{server}: other values "other"'
        provider(lab).publish_txt("example.test", fqdn, "v", 60)
        assert observe(fqdn, "v", lab.dns_server).values == ("other", "v")
    finally:
        provider(lab).remove_txt("example.test", fqdn, "other")
        provider(lab).remove_txt("example.test", fqdn, "v")


def test_wrong_secret_is_a_dns_error_without_the_secret(lab: LabInfo) -> None:
    wrong = "d3JvbmctLXdyb25nLS13cm9uZy0td3JvbmctLXdyb25nLS0="
    with pytest.raises(DNSError) as caught:
        provider(lab, tsig_secret=wrong).publish_txt(
            "example.test", "_acme-challenge.wrong.example.test", "v", 60
        )
    message = str(caught.value)
    assert "TSIG" in message
    assert wrong not in message and lab.tsig_secret not in message
    assert wrong not in repr(caught.value.__cause__) and caught.value.__cause__ is None


def test_unknown_key_name_is_refused(lab: LabInfo) -> None:
    with pytest.raises(DNSError, match="TSIG") as caught:
        provider(lab, tsig_name="other-key.").publish_txt(
            "example.test", "_acme-challenge.other.example.test", "v", 60
        )
    assert lab.tsig_secret not in str(caught.value)


def test_policy_refusal_names_the_rcode(lab: LabInfo) -> None:
    # A zone this server is not authoritative for.
    with pytest.raises(DNSError, match=r"NOTAUTH|REFUSED|NOTZONE") as caught:
        provider(lab).publish_txt("example.org", "_acme-challenge.example.org", "v", 60)
    assert lab.tsig_secret not in str(caught.value)


def test_resolve_nameservers_through_a_resolver(lab: LabInfo) -> None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [lab.dns_host]
    resolver.port = lab.dns_port
    resolver.lifetime = 3
    assert resolve_nameservers("sub.example.test", resolver=resolver) == [("127.0.0.1", 53)]
    with pytest.raises(DNSError):
        resolve_nameservers("example.org", resolver=resolver)


def test_list_txt_reads_the_server_itself(lab: LabInfo) -> None:
    fqdn = challenge_name(f"list-{secrets.token_hex(4)}.example.test")
    dns_provider = provider(lab)
    assert dns_provider.list_txt("example.test", fqdn) == []
    dns_provider.publish_txt("example.test", fqdn, "one", 60)
    dns_provider.publish_txt("example.test", fqdn, "two", 60)
    assert sorted(dns_provider.list_txt("example.test", fqdn)) == ["one", "two"]
    dns_provider.remove_txt("example.test", fqdn, "one")
    assert dns_provider.list_txt("example.test", fqdn) == ["two"]
    dns_provider.remove_txt("example.test", fqdn, "two")


def test_check_authenticates_and_names_the_wrong_setting(lab: LabInfo) -> None:
    provider(lab).check("example.test")
    wrong = "d3JvbmctLXdyb25nLS13cm9uZy0td3JvbmctLXdyb25nLS0="
    with pytest.raises(InvalidInput) as caught:
        provider(lab, tsig_secret=wrong).check("example.test")
    assert [f for f, _ in caught.value.errors] == ["settings.tsig_secret"]
    assert wrong not in str(caught.value.errors)
    with pytest.raises(InvalidInput) as caught:
        provider(lab, tsig_name="other-key.").check("example.test")
    assert [f for f, _ in caught.value.errors] == ["settings.tsig_name"]
    with pytest.raises(DNSError, match=r"127\.0\.0\.1:9"):
        provider(lab, port=9, timeout_seconds=0.3, transport="tcp").check("example.test")
