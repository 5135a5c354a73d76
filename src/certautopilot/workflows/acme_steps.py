"""The checkpointed steps of an ACME issuance.

Every step takes and returns only ids and public values (no key, HMAC or TSIG secret);
each is idempotent (check, then write) because DBOS runs a step again when a worker dies
inside it. Network I/O and key generation happen outside database transactions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from dbos import DBOS
from sqlalchemy.orm import Session

from certautopilot.certificates.models import CertificateVersion
from certautopilot.crypto import keys
from certautopilot.crypto import service as secrets
from certautopilot.dns import service as zones
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import (
    parse_nameserver,
    resolve_nameservers,
    txt_visible,
    wait_for_txt,
)
from certautopilot.errors import CertAutoPilotError, IssuerError, TransientIssuerError
from certautopilot.issuers import service as issuers
from certautopilot.issuers.acme.client import AcmeClient
from certautopilot.issuers.acme.keys import load_account_key
from certautopilot.issuers.models import Issuer
from certautopilot.renewal.windows import renewal_time
from certautopilot.workflows.faults import pause_point
from certautopilot.workflows.records import load, record_event, set_step, tx
from certautopilot.workflows.runtime import runtime

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

AUTHORIZATION_TIMEOUT = 300.0
FINALIZE_TIMEOUT = 300.0
TXT_TTL = 60


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientIssuerError)


def retrying_step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A step DBOS retries when the CA is temporarily unavailable.

    The client already retries each request (badNonce, Retry-After up to 30 s, network
    errors with backoff); these step attempts cover a longer outage: 3 attempts, 2 s then
    6 s apart. Past that the certificate fails with the CA's words: nothing loops forever.
    """
    return DBOS.step(
        name=name,
        retries_allowed=True,
        max_attempts=3,
        interval_seconds=2.0,
        backoff_rate=3.0,
        should_retry=_retryable,
    )


@dataclass(frozen=True)
class ChallengeTask:
    """One TXT record to publish and one challenge to answer. All values are public."""

    name: str
    txt_name: str
    txt_value: str
    zone_id: str
    manual: bool
    authz_url: str
    challenge_url: str | None
    needs_answer: bool


def _client(session: Session, issuer: Issuer) -> AcmeClient:
    """One client per issuer per worker, so connections and nonces are reused."""
    rt = runtime()
    key = f"acme:{issuer.id}"
    client = rt.cache.get(key)
    if client is None:
        jwk = load_account_key(issuers.account_key_pem(session, rt.kek, issuer))
        client = AcmeClient(
            issuer.config["directory_url"],
            jwk,
            account_url=issuer.config.get("account_url"),
            ca_bundle_pem=issuer.config.get("ca_bundle_pem"),
        )
        rt.cache[key] = client
    assert isinstance(client, AcmeClient)
    return client


def _client_for_version(version_id: str) -> tuple[AcmeClient, CertificateVersion]:
    with tx() as session:
        version, cert = load(session, version_id)
        issuer = session.get(Issuer, cert.issuer_id)
        assert issuer is not None
        return _client(session, issuer), version


@DBOS.step(name="acme.prepare_key")
def prepare_key(version_id: str) -> bool:
    """Generates and stores the private key and CSR once. False when the version is done."""
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status != "pending":
            return False
        if version.csr_pem:
            return True
        key_type, names = cert.key_type, list(cert.names)
        cert.status = "issuing"
        set_step(session, cert, "generating_key")
    key = keys.generate_key(key_type)
    csr = keys.build_csr(key, names).decode()
    pem = keys.key_to_pem(key)
    with tx() as session:
        version, cert = load(session, version_id)
        if not version.csr_pem:
            version.key_secret_id = secrets.store_secret(
                session,
                runtime().kek,
                owner_table="certificate_versions",
                owner_id=version.id,
                purpose="private_key",
                plaintext=pem,
            ).id
            version.csr_pem = csr
            record_event(session, cert, "key.generated", {"key_type": key_type})
    return True


@retrying_step("acme.create_order")
def create_order(version_id: str) -> str:
    """Creates the ACME order once; a retried step reuses the stored order URL."""
    client, version = _client_for_version(version_id)
    if version.order_url:
        return version.order_url
    assert version.csr_pem
    order = client.new_order(version.csr_pem.encode())
    with tx() as session:
        version, cert = load(session, version_id)
        if version.order_url is None:
            version.order_url = order.url
            record_event(session, cert, "acme.order.created", {"order_url": order.url})
            set_step(session, cert, "authorizing")
        url = version.order_url
    pause_point("after_order")
    return url


@retrying_step("acme.challenges")
def challenges(version_id: str) -> list[ChallengeTask]:
    client, version = _client_for_version(version_id)
    assert version.order_url
    order = client.get_order(version.order_url)
    if order.status == "invalid":
        raise IssuerError(order.error_detail or "the CA marked the order invalid", order.error_type)
    found = client.dns01_challenges(order)
    with tx() as session:
        _, cert = load(session, version_id)
        overrides = cert.challenge_overrides
        zone_of = {
            z.id: z for z in session.query(DnsZone).filter(DnsZone.project_id == cert.project_id)
        }
    tasks: list[ChallengeTask] = []
    for ch in found:
        if ch.authz_status == "valid":
            continue
        if ch.txt_value is None:
            raise IssuerError(f"the CA offers no dns-01 challenge for {ch.requested_name}")
        target = overrides.get(ch.requested_name) or overrides.get(ch.identifier) or {}
        zone = zone_of.get(target.get("zone_id", ""))
        if zone is None:
            raise CertAutoPilotError(f"no DNS zone is recorded for {ch.requested_name}")
        tasks.append(
            ChallengeTask(
                name=ch.requested_name,
                txt_name=target.get("challenge_name") or ch.txt_name,
                txt_value=ch.txt_value,
                zone_id=zone.id,
                manual=zone.provider == "manual",
                authz_url=ch.authz_url,
                challenge_url=ch.challenge_url,
                needs_answer=ch.needs_answer,
            )
        )
    return tasks


@DBOS.step(name="dns.publish")
def publish(version_id: str, tasks: list[ChallengeTask]) -> None:
    rt = runtime()
    with tx() as session:
        _, cert = load(session, version_id)
        set_step(session, cert, "publishing_dns")
        by_zone = {t.zone_id: session.get(DnsZone, t.zone_id) for t in tasks}
        providers = {
            zid: zones.provider_for(session, rt.kek, z)
            for zid, z in by_zone.items()
            if z is not None
        }
    for t in tasks:
        zone = by_zone[t.zone_id]
        assert zone is not None
        providers[t.zone_id].publish_txt(zone.name, t.txt_name, t.txt_value, TXT_TTL)
    with tx() as session:
        _, cert = load(session, version_id)
        for t in tasks:
            record_event(
                session,
                cert,
                "dns.record.published",
                {"name": t.txt_name, "type": "TXT", "value": t.txt_value},
            )
        set_step(session, cert, "waiting_for_dns")


def _nameservers(zone: DnsZone) -> list[tuple[str, int]]:
    if zone.nameservers:
        return [parse_nameserver(ns) for ns in zone.nameservers]
    return resolve_nameservers(zone.name)


@DBOS.step(name="dns.wait_propagation")
def wait_propagation(version_id: str, tasks: list[ChallengeTask]) -> None:
    with tx() as session:
        zone_of = {t.zone_id: session.get(DnsZone, t.zone_id) for t in tasks}
    pause_point("waiting_propagation")
    for t in tasks:
        zone = zone_of[t.zone_id]
        assert zone is not None
        wait_for_txt(
            t.txt_name,
            t.txt_value,
            _nameservers(zone),
            deadline_seconds=zone.propagation_timeout_seconds,
        )
    with tx() as session:
        _, cert = load(session, version_id)
        record_event(
            session,
            cert,
            "dns.propagation.confirmed",
            {"names": sorted({t.txt_name for t in tasks})},
        )


@DBOS.step(name="dns.request_manual")
def request_manual(version_id: str, tasks: list[ChallengeTask]) -> None:
    records = [{"name": t.txt_name, "type": "TXT", "value": t.txt_value} for t in tasks]
    with tx() as session:
        _, cert = load(session, version_id)
        cert.status = "awaiting_dns"
        cert.pending_action = {
            "kind": "manual_dns",
            "records": records,
            "message": "Publish these TXT records at your DNS host, then confirm.",
        }
        set_step(session, cert, "awaiting_dns")
        record_event(session, cert, "dns.manual.requested", {"records": records})


@DBOS.step(name="dns.check_manual")
def check_manual(version_id: str, tasks: list[ChallengeTask], confirmed_by: str) -> bool:
    """After "I've added it": True when every record is on the zone's authoritative servers."""
    with tx() as session:
        zone_of = {t.zone_id: session.get(DnsZone, t.zone_id) for t in tasks}
    missing = []
    for t in tasks:
        zone = zone_of[t.zone_id]
        assert zone is not None
        if not txt_visible(t.txt_name, t.txt_value, _nameservers(zone)):
            missing.append(t.txt_name)
    with tx() as session:
        _, cert = load(session, version_id)
        if missing:
            message = (
                "Not visible yet on the zone's authoritative servers: "
                + ", ".join(sorted(set(missing)))
                + ". Check the record and confirm again once it is published."
            )
            cert.pending_action = {**(cert.pending_action or {}), "message": message}
            record_event(
                session,
                cert,
                "dns.manual.not_visible",
                {"missing": sorted(set(missing))},
                actor=confirmed_by,
            )
            return False
        cert.status = "issuing"
        cert.pending_action = None
        record_event(session, cert, "dns.manual.confirmed", {}, actor=confirmed_by)
        set_step(session, cert, "validating")
    return True


@retrying_step("acme.validate")
def validate(version_id: str, tasks: list[ChallengeTask]) -> None:
    client, _ = _client_for_version(version_id)
    with tx() as session:
        _, cert = load(session, version_id)
        set_step(session, cert, "validating")
    for t in tasks:
        if t.needs_answer and t.challenge_url:
            client.answer_challenge(t.challenge_url)
    for url in dict.fromkeys(t.authz_url for t in tasks):
        client.wait_authorization(url, timeout=AUTHORIZATION_TIMEOUT)
    with tx() as session:
        _, cert = load(session, version_id)
        record_event(
            session, cert, "acme.authorizations.valid", {"names": sorted({t.name for t in tasks})}
        )
        set_step(session, cert, "finalizing")


@retrying_step("acme.finalize")
def finalize(version_id: str) -> None:
    client, version = _client_for_version(version_id)
    if version.status == "issued":
        return
    assert version.order_url and version.csr_pem
    chain = client.finalize(version.order_url, version.csr_pem.encode(), timeout=FINALIZE_TIMEOUT)
    pause_point("after_finalize")
    leaf = keys.split_pem_chain(chain)[0]
    info = keys.cert_info(leaf)
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status == "issued":
            return
        version.chain_secret_id = secrets.store_secret(
            session,
            runtime().kek,
            owner_table="certificate_versions",
            owner_id=version.id,
            purpose="certificate_chain",
            plaintext=chain.encode(),
        ).id
        version.status = "issued"
        version.serial = info.serial_hex
        version.not_before = info.not_before
        version.not_after = info.not_after
        version.fingerprint_sha256 = info.fingerprint_sha256
        cert.current_version_id = version.id
        cert.not_after = info.not_after
        cert.status = "issued"
        cert.error = None
        cert.pending_action = None
        cert.next_renewal_at = (
            renewal_time(
                not_before=info.not_before,
                not_after=info.not_after,
                window=cert.renewal_window,
                jitter_key=cert.id,
            )
            if cert.auto_renew
            else None
        )
        set_step(session, cert, None)
        record_event(
            session,
            cert,
            "cert.renewed" if version.reason == "renew" else "cert.issued",
            {
                "serial": info.serial_hex,
                "not_after": info.not_after.isoformat(),
                "fingerprint_sha256": info.fingerprint_sha256,
                "version": version.seq,
            },
        )
        if cert.next_renewal_at is not None:
            record_event(
                session, cert, "renewal.scheduled", {"next_at": cert.next_renewal_at.isoformat()}
            )


@DBOS.step(name="dns.cleanup")
def cleanup(version_id: str, tasks: list[ChallengeTask]) -> None:
    """Removes every TXT record this issuance published; never fails the issuance."""
    rt = runtime()
    with tx() as session:
        by_zone = {t.zone_id: session.get(DnsZone, t.zone_id) for t in tasks}
        providers = {
            zid: zones.provider_for(session, rt.kek, z)
            for zid, z in by_zone.items()
            if z is not None
        }
    removed, failed = [], []
    for t in tasks:
        zone = by_zone[t.zone_id]
        assert zone is not None
        try:
            providers[t.zone_id].remove_txt(zone.name, t.txt_name, t.txt_value)
            removed.append(t)
        except CertAutoPilotError as exc:
            log.warning("could not remove TXT %s: %s", t.txt_name, exc)
            failed.append((t, str(exc)))
    with tx() as session:
        _, cert = load(session, version_id)
        for t in removed:
            record_event(
                session,
                cert,
                "dns.record.removed",
                {"name": t.txt_name, "type": "TXT", "value": t.txt_value},
            )
        for t, why in failed:
            record_event(
                session, cert, "dns.record.cleanup_failed", {"name": t.txt_name, "error": why}
            )


@DBOS.step(name="cert.mark_failed")
def mark_failed(version_id: str, title: str, detail: str, problem_type: str | None) -> None:
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status == "issued":
            return
        version.status = "failed"
        cert.status = "failed"
        cert.pending_action = None
        cert.error = {"title": title, "detail": detail, "type": problem_type}
        set_step(session, cert, None)
        record_event(
            session,
            cert,
            "cert.failed",
            {"title": title, "detail": detail, "type": problem_type, "version": version.seq},
        )
