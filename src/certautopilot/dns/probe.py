"""A zone's "Test" (write, read everywhere, remove a probe TXT record) and zone suggestion.

Both do network I/O only: the caller reads what it needs (the zone's provider, built with
its credentials in memory) inside a transaction, ends it, then calls these. Step details
carry the provider's and servers' words, never a setting: lexicon's errors are scrubbed
of secrets and rfc2136's never hold one.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence

import dns.exception
import dns.name
import dns.resolver

from certautopilot.dns.interfaces import DNSProvider
from certautopilot.dns.propagation import (
    Nameserver,
    parse_nameserver,
    resolve_nameservers,
    txt_visible,
    wait_for_txt,
)
from certautopilot.dns.schemas import ZoneTestOut, ZoneTestStep
from certautopilot.errors import CertAutoPilotError

PROBE_LABEL = "_certautopilot-probe"
PROBE_TTL = 60
Step = Callable[[str, bool, str], bool]


def probe_name(zone: str) -> str:
    return f"{PROBE_LABEL}.{zone.rstrip('.')}"


def run_zone_test(
    provider: DNSProvider,
    *,
    zone: str,
    nameservers: Sequence[str],
    timeout_seconds: float,
    manual: bool = False,
    resolver: dns.resolver.Resolver | None = None,
) -> ZoneTestOut:
    """Publishes ``_certautopilot-probe.<zone>`` with a random value, finds it through the
    provider's own listing, waits (up to ``timeout_seconds``) for every authoritative
    server to serve it, removes it, and reports each step. Removal is tried whenever the
    publish step may have written something."""
    if manual:
        return ZoneTestOut(
            ok=False,
            steps=[
                ZoneTestStep(
                    step="publish",
                    ok=False,
                    detail="a manual zone: a person publishes its records, there is no API to test",
                )
            ],
        )
    fqdn = probe_name(zone)
    value = f"certautopilot-probe-{secrets.token_hex(8)}"
    steps: list[ZoneTestStep] = []

    def step(name: str, ok: bool, detail: str) -> bool:
        steps.append(ZoneTestStep(step=name, ok=ok, detail=detail))
        return ok

    try:
        provider.publish_txt(zone, fqdn, value, PROBE_TTL)
        step("publish", True, f"TXT {fqdn} written through the provider")
    except CertAutoPilotError as exc:
        step("publish", False, str(exc))
        _remove(provider, zone, fqdn, value, step)
        return ZoneTestOut(ok=False, steps=steps)
    try:
        found = value in provider.list_txt(zone, fqdn)
        step(
            "list",
            found,
            f"the provider lists TXT {fqdn} with the probe value"
            if found
            else f"the provider does not list the probe value at {fqdn}",
        )
    except CertAutoPilotError as exc:
        step("list", False, str(exc))
    _read_everywhere(fqdn, value, zone, nameservers, timeout_seconds, resolver, step)
    _remove(provider, zone, fqdn, value, step)
    return ZoneTestOut(ok=all(s.ok for s in steps), steps=steps)


def _servers(
    zone: str, nameservers: Sequence[str], resolver: dns.resolver.Resolver | None
) -> list[Nameserver]:
    if nameservers:
        return [parse_nameserver(ns) for ns in nameservers]
    return resolve_nameservers(zone, resolver=resolver)


def _read_everywhere(
    fqdn: str,
    value: str,
    zone: str,
    nameservers: Sequence[str],
    timeout_seconds: float,
    resolver: dns.resolver.Resolver | None,
    record: Step,
) -> None:
    try:
        servers = _servers(zone, nameservers, resolver)
    except CertAutoPilotError as exc:
        record("read", False, f"no authoritative server to ask: {exc}")
        return
    with contextlib.suppress(CertAutoPilotError):  # each server's answer is reported below
        wait_for_txt(fqdn, value, servers, deadline_seconds=timeout_seconds)
    for host, port in servers:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        seen = txt_visible(fqdn, value, [(host, port)], timeout=2.0)
        record(
            f"read {where}",
            seen,
            f"{where} serves the probe value"
            if seen
            else f"{where} did not serve the probe value within {timeout_seconds:g}s",
        )


def _remove(provider: DNSProvider, zone: str, fqdn: str, value: str, record: Step) -> None:
    try:
        provider.remove_txt(zone, fqdn, value)
        left = value in provider.list_txt(zone, fqdn)
        record(
            "remove",
            not left,
            f"TXT {fqdn} removed" if not left else f"the provider still lists {fqdn}",
        )
    except CertAutoPilotError as exc:
        record("remove", False, str(exc))


def suggest_apex(name: str, *, resolver: dns.resolver.Resolver | None = None) -> str:
    """The apex of the DNS zone holding ``name``, found by asking SOA records from the name
    upward (dnspython's ``zone_for_name``: an authoritative answer's SOA, in the answer or
    the authority section). Raises :class:`dns.exception.DNSException` when none is found."""
    qname = dns.name.from_text(name.strip().removeprefix("*."))
    found = dns.resolver.zone_for_name(qname, resolver=resolver)
    return str(found.to_text(omit_final_dot=True)).lower()


def apex_or_reason(
    name: str, *, resolver: dns.resolver.Resolver | None = None
) -> tuple[str | None, str]:
    """(apex, "") or (None, why none was found) for :func:`suggest_apex`."""
    try:
        return suggest_apex(name, resolver=resolver), ""
    except dns.exception.DNSException as exc:
        return None, f"no zone found for {name} by SOA look-ups: {type(exc).__name__}"
