"""The checkpointed steps of an issuance through a CA that validates names with DNS-01.

The CA is reached only through the issuer port (``issuers.interfaces``; the ACME plugin
implements it): ``order``/``poll``, ``answer``, ``finalize``. Everything else is the core's
and lives here: the key and CSR, the stored order URL, DNS publishing, the propagation
check and the cleanup, the rate-limit log, the timeline.

Few and coarse, because each step and each transaction costs CPU (DESIGN.md measured a
workflow step at ~2.5 ms); each is idempotent (check, then write), because DBOS runs a
step again when a worker dies inside it. Steps take and return only ids and public values
(never a key, HMAC or TSIG secret). Network I/O and key generation happen outside
database transactions; each step reads in one short transaction and writes in one.

Happy path, two steps: ``begin`` (key, CSR, the order, its challenges, TXT records
published and seen on the zone's authoritative servers) → ``complete`` (answer, validate,
remove the TXT records, finalize, store). Manual zones pause between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ParamSpec, TypeGuard, TypeVar

from dbos import DBOS
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certautopilot import links
from certautopilot.audit.events import EventType
from certautopilot.auth.models import User
from certautopilot.certificates import fallbacks, material
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.persist import decide_persist, persist_info
from certautopilot.certificates.preflight import MANUAL_DNS_REASON
from certautopilot.certificates.schemas import CertificateError, ManualDnsAction, TxtRecord
from certautopilot.certificates.states import (
    CertStatus,
    VersionStatus,
    transition,
    transition_version,
)
from certautopilot.certificates.zones import cname_lookup_for, reroute
from certautopilot.clock import utcnow
from certautopilot.crypto import keys
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.dns import persist
from certautopilot.dns import service as zones
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import (
    Observation,
    observe,
    parse_nameserver,
    resolve_nameservers,
    wait_for_txt,
)
from certautopilot.errors import (
    CaaForbidden,
    CertAutoPilotError,
    DNSError,
    IssuerError,
    PropagationTimeout,
    TransientIssuerError,
)
from certautopilot.issuers import learned_limits
from certautopilot.issuers import service as issuers
from certautopilot.issuers.interfaces import (
    DNS_PERSIST,
    CertificateAuthority,
    Challenge,
    Order,
    OrderOptions,
    PersistCapable,
)
from certautopilot.issuers.models import Issuer
from certautopilot.notifications import service as notifications
from certautopilot.projects.models import Project
from certautopilot.renewal import orders, profiles
from certautopilot.renewal.ari_refresh import ari_cert_id_of
from certautopilot.workflows import counted, fallback
from certautopilot.workflows.faults import pause_point
from certautopilot.workflows.issued import store_issued
from certautopilot.workflows.outage import Retry, ride_out
from certautopilot.workflows.records import load, record_event, set_step, tx
from certautopilot.workflows.retries import database_unavailable, db_step
from certautopilot.workflows.runtime import ZoneHandle, launcher, runtime

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

AUTHORIZATION_TIMEOUT = 300.0
FINALIZE_TIMEOUT = 300.0
TXT_TTL = 60


RETRY_AFTER_CAP = 30.0


def _retryable(exc: BaseException) -> bool:
    """Transient, unless the CA asked for a longer pause (a rate limit's ``Retry-After``):
    retrying seconds later would ignore it; the failure carries it to the renewal backoff.
    A lost database connection (PostgreSQL restarting) is transient too (``retries.py``)."""
    if database_unavailable(exc):
        return True
    if not isinstance(exc, TransientIssuerError):
        return False
    return exc.retry_after is None or exc.retry_after <= RETRY_AFTER_CAP


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
    # Answered through dns-persist-01 (``challenge_url`` is then that challenge's URL):
    # nothing to publish, nobody to wait for. A class default: older pickled plans lack it.
    persist: bool = False
    # where the record is written, for the timeline (class defaults, as ``persist``)
    zone: str = ""
    delegated_from: str | None = None


@dataclass(frozen=True)
class Plan:
    """What ``begin`` did: nothing to do (``done``), or an order with its challenges.

    ``published`` are the TXT records it published (at ``published_at``, ISO 8601);
    ``checks`` what each authoritative server answered for them (``_check_detail``);
    the order URL and the CSR are public values, carried so ``complete`` need not read them.
    """

    done: bool
    issuer_id: str = ""
    order_url: str = ""
    csr_pem: str = ""
    tasks: list[ChallengeTask] = field(default_factory=list)
    published: list[ChallengeTask] = field(default_factory=list)
    published_at: str | None = None
    confirmed_at: str | None = None
    checks: tuple[dict[str, Any], ...] = ()  # a class default: older pickled plans have none
    # names whose authorization the CA already held valid (RFC 8555 §7.1.4: a CA may reuse
    # one): nothing was published for them; the timeline says so (a class default, as above)
    reused: tuple[str, ...] = ()

    @property
    def manual(self) -> list[ChallengeTask]:
        return [t for t in self.tasks if t.manual]


# -- cached per worker (``Runtime``): the issuer's CA client and each zone's provider -----


def _ca(session: Session, issuer_id: str) -> CertificateAuthority:
    """The issuer's client through its plugin; an edited issuer gets a fresh one."""
    rt = runtime()
    issuer = session.get(Issuer, issuer_id)
    assert issuer is not None
    return rt.issuers.get(
        issuer_id, issuers.fingerprint(issuer), lambda: issuers.connect(session, rt.kek, issuer)
    )


def _zone_fingerprint(zone: DnsZone) -> str:
    return repr(
        (
            zone.name,
            zone.provider,
            sorted(zone.config.items()),
            zone.credentials_secret_id,
            list(zone.nameservers),
            zone.propagation_timeout_seconds,
        )
    )


def _zone(session: Session, zone_id: str) -> ZoneHandle:
    rt = runtime()
    zone = session.get(DnsZone, zone_id)
    assert zone is not None

    def make() -> ZoneHandle:
        nameservers = (
            [parse_nameserver(ns) for ns in zone.nameservers]
            if zone.nameservers
            else resolve_nameservers(zone.name)
        )
        return ZoneHandle(
            zone.name,
            zones.provider_for(session, rt.kek, zone),
            tuple(nameservers),
            zone.propagation_timeout_seconds,
        )

    return rt.zones.get(zone_id, _zone_fingerprint(zone), make)


def _zones(session: Session, tasks: list[ChallengeTask]) -> dict[str, ZoneHandle]:
    return {t.zone_id: _zone(session, t.zone_id) for t in tasks}


# -- steps ------------------------------------------------------------------------------


@retrying_step("acme.begin")
def begin(version_id: str) -> Plan:
    """Key + CSR and the ACME order, once each (a stored order URL is reused), then the
    challenges; TXT records of automatic zones are published and checked on the zone's
    authoritative servers. On a failure after publishing, the records are removed."""
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status != VersionStatus.PENDING:
            return Plan(done=True)
        issuer_id = version.issuer_id or cert.issuer_id  # a fallback sets the version's
        ca = _ca(session, issuer_id)
        caa_issuer = _caa_checked(session, cert, issuer_id) if version.order_url is None else None
        csr_pem, order_url = version.csr_pem, version.order_url
        key_type, names = cert.key_type, list(cert.names)
        stored = dict(cert.challenge_overrides)
        project_zones = list(
            session.scalars(select(DnsZone).where(DnsZone.project_id == cert.project_id))
        )
        manual_ids = frozenset(z.id for z in project_zones if zones.is_manual(z))
        profile = profiles.profile_of(session, cert.id)  # renewals keep the profile
        replaces = (
            replaced_ari_id(session, runtime().kek, cert, version) if order_url is None else None
        )
    if caa_issuer is not None:  # before ordering: the CA would refuse it after validation
        refusal = fallback.caa_refusal(caa_issuer, names, project_zones)
        if refusal is not None:
            raise CaaForbidden(f"CAA does not allow {caa_issuer.name}: {refusal}", "caa")
    overrides = _route_again(version_id, names, project_zones, stored, manual_ids)
    key_pem = None
    if csr_pem is None:
        key = keys.generate_key(key_type)
        key_pem = keys.key_to_pem(key)
        csr_pem = keys.build_csr(key, names).decode()
    if order_url is None:
        # ``replaces`` goes out only when the CA's directory offers renewalInfo (the plugin)
        try:
            order = ca.order(csr_pem, OrderOptions(profile=profile, replaces=replaces))
        except IssuerError as exc:
            _learn_limit(issuer_id, len(names), exc)
            raise
        _store_order(version_id, order, csr_pem, key_pem, key_type)
        pause_point("after_order")
    else:
        order = ca.poll(order_url)  # an invalid order raises the CA's problem
    tasks = _choose_persist(
        version_id, ca, list(order.challenges), _tasks(order.challenges, overrides)
    )
    automatic = [t for t in tasks if not t.manual and not t.persist]
    # an order the CA made ``ready`` lists no challenge at all: every name was reused
    reused = tuple(sorted(set(names) - {t.name for t in tasks}))
    plan = Plan(False, issuer_id, order.ref, csr_pem, tasks, reused=reused)
    if not automatic:
        return plan
    published_at = utcnow().isoformat()
    with tx() as session:
        handles = _zones(session, automatic)
    published: list[ChallengeTask] = []
    refused: dict[str, str] | None = None
    checks: list[dict[str, Any]] = []
    try:
        for t in automatic:
            zone = handles[t.zone_id]
            try:
                _publish(version_id, zone, t)
            except CertAutoPilotError as exc:
                refused = {"name": t.txt_name, "type": "TXT", "value": t.txt_value}
                refused["error"] = str(exc)
                raise
            published.append(t)
        pause_point("waiting_propagation")
        _wait_for_propagation(published, handles, checks)
    except Exception:
        removed, failed = _remove_records(handles, published)
        with tx() as session:
            _, cert = load(session, version_id)
            _record_publication(session, cert, published, published_at, None)
            if refused is not None:
                record_event(session, cert, EventType.DNS_RECORD_REFUSED, refused)
            if checks:
                record_event(
                    session, cert, EventType.DNS_PROPAGATION_CHECKED, _check_summary(checks)
                )
            _record_removals(session, cert, removed, failed)
        raise
    return replace(
        plan,
        published=published,
        published_at=published_at,
        confirmed_at=utcnow().isoformat(),
        checks=tuple(checks),
    )


def _publish(version_id: str, zone: ZoneHandle, t: ChallengeTask) -> None:
    """Publishes one TXT record, waiting out a DNS server that does not answer (each retry
    on the timeline as ``dns.server.unavailable``; see ``outage.py``)."""

    def report(retry: Retry) -> None:
        with tx() as session:
            _, cert = load(session, version_id)
            record_event(
                session,
                cert,
                EventType.DNS_SERVER_UNAVAILABLE,
                {
                    "name": t.txt_name,
                    "zone": zone.name,
                    "error": str(retry.error),
                    "attempt": retry.attempt,
                    "retry_in_seconds": retry.delay_seconds,
                },
            )

    ride_out(
        lambda: zone.provider.publish_txt(zone.name, t.txt_name, t.txt_value, TXT_TTL),
        on_retry=report,
    )


def _route_again(
    version_id: str,
    names: list[str],
    project_zones: list[DnsZone],
    stored: dict[str, Any],
    manual_ids: frozenset[str],
) -> dict[str, Any]:
    """Every issuance (the first and each renewal) follows ``_acme-challenge`` CNAMEs
    again, outside any transaction, so a delegation added or changed after the request
    is followed; a broken one fails here, before an order is placed. A changed routing is
    stored on the certificate (what its detail page and dns-persist-01 read)."""
    routed = reroute(names, project_zones, stored, manual_ids, cname_lookup_for(project_zones))
    if routed != stored:
        with tx() as session:
            _, cert = load(session, version_id)
            cert.challenge_overrides = routed
    return routed


def _wait_for_propagation(
    published: list[ChallengeTask], handles: dict[str, ZoneHandle], checks: list[dict[str, Any]]
) -> None:
    """Waits, record by record, until every authoritative server of its zone serves it,
    adding to ``checks`` what each server last answered (also when it raises).

    When a record is still missing at its zone's deadline, the records not waited for yet
    are asked once each, so the timeline shows every record, then the timeout is raised."""
    for i, t in enumerate(published):
        zone = handles[t.zone_id]
        try:
            seen = wait_for_txt(
                t.txt_name,
                t.txt_value,
                list(zone.nameservers),
                deadline_seconds=zone.propagation_timeout,
            )
        except PropagationTimeout as exc:
            checks.append(_check_detail(t, [o for o in exc.observations if _is_obs(o)]))
            for rest in published[i + 1 :]:
                servers = handles[rest.zone_id].nameservers
                seen = [observe(rest.txt_name, rest.txt_value, ns) for ns in servers]
                checks.append(_check_detail(rest, seen))
            raise
        checks.append(_check_detail(t, seen))


def _is_obs(o: object) -> TypeGuard[Observation]:
    return isinstance(o, Observation)


def _check_detail(t: ChallengeTask, seen: list[Observation]) -> dict[str, Any]:
    """One record's check as public values: its name, value, each server's answer."""
    return {
        "name": t.txt_name,
        "value": t.txt_value,
        "ok": bool(seen) and all(o.serves for o in seen),
        "servers": [o.to_json() for o in seen],
    }


def _check_summary(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``dns.propagation.checked`` event: every record, and one line per server that
    does not serve its record yet."""
    lines = [
        f"{c['name']} on {s['summary']}"
        for c in checks
        for s in c["servers"]
        if s["outcome"] != "serves_value"
    ]
    detail: dict[str, Any] = {"ok": all(c["ok"] for c in checks), "records": checks}
    if lines:
        detail["message"] = "; ".join(lines)
    return detail


def replaced_ari_id(
    session: Session, kek: KeyEncryptionKey, cert: Certificate, version: CertificateVersion
) -> str | None:
    """The ARI certificate identifier (RFC 9773 §4.1) of the version a renewal replaces:
    the certificate's current version, read from its stored (public) chain. None for a
    first issuance, or when it cannot be read (the order then goes without ``replaces``)."""
    if version.reason != "renew" or cert.current_version_id in (None, version.id):
        return None
    current = session.get(CertificateVersion, cert.current_version_id)
    if current is None or current.chain_secret_id is None:
        return None
    if (current.issuer_id or cert.issuer_id) != (version.issuer_id or cert.issuer_id):
        return None  # issued by another CA (a fallback): nothing this CA could replace
    try:
        return ari_cert_id_of(material.chain_pem(session, kek, current))
    except (CertAutoPilotError, ValueError) as exc:  # ARI can only help: order without it
        log.warning("no ARI id for the version %s replaces: %s", version.id, exc)
        return None


def _caa_checked(session: Session, cert: Certificate, issuer_id: str) -> Issuer | None:
    """The issuer, detached, when its CAA is checked before ordering: only for a
    certificate with fallback issuers (one without keeps today's path: preflight warned,
    and the CA has the last word)."""
    if len(fallbacks.chain_ids(session, cert)) < 2:
        return None
    issuer = session.get(Issuer, issuer_id)
    assert issuer is not None
    session.expunge(issuer)
    return issuer


def _learn_limit(issuer_id: str, names: int, exc: IssuerError) -> None:
    """A newOrder refused for its size teaches the issuer's limit (``learned_limits``)."""
    if not learned_limits.is_limit_refusal(exc.problem_type, exc.detail):
        return
    with tx() as session:
        issuer = session.get(Issuer, issuer_id)
        if issuer is not None:
            learned_limits.note_refused(issuer, names, exc.detail)


def _store_order(
    version_id: str, order: Order, csr_pem: str, key_pem: bytes | None, key_type: str
) -> None:
    """Stores the order URL (and the new key) once, and counts the order in the rate-limit
    log unless the API or the scheduler counted it already."""
    try:
        _store_order_tx(version_id, order, csr_pem, key_pem, key_type, count=True)
    except IntegrityError:  # a concurrent run of this step counted it: store without
        _store_order_tx(version_id, order, csr_pem, key_pem, key_type, count=False)


def _store_order_tx(
    version_id: str,
    order: Order,
    csr_pem: str,
    key_pem: bytes | None,
    key_type: str,
    *,
    count: bool,
) -> None:
    with tx() as session:
        version, cert = load(session, version_id)
        if version.order_url is not None:
            return
        if key_pem is not None:
            material.store_private_key(session, runtime().kek, version, key_pem)
            version.csr_pem = csr_pem
            record_event(session, cert, EventType.KEY_GENERATED, {"key_type": key_type})
        version.order_url = order.ref
        cert.status = transition(cert.status, CertStatus.ISSUING)
        issuer = session.get(Issuer, version.issuer_id or cert.issuer_id)
        if issuer is not None:
            learned_limits.note_accepted(issuer, len(cert.names))
        if count and issuer is not None:
            orders.record_order(
                session,
                issuer=issuer,
                certificate_id=cert.id,
                names=cert.names,
                version_id=version.id,
                at=utcnow(),
            )
        detail: dict[str, Any] = {"order_url": order.ref}
        if order.replaces:  # only what the CA acknowledged (RFC 9773 §5)
            detail["replaces"] = order.replaces
        elif order.replaces_sent:
            detail["replaces_sent"] = order.replaces_sent
            detail["replaces_acknowledged"] = False
        asked = profiles.profile_of(session, cert.id)
        if asked:  # what was asked, and what the CA's order says it will issue under
            detail["profile"] = asked
            detail["profile_in_order"] = order.profile
        record_event(session, cert, EventType.ACME_ORDER_CREATED, detail)
        set_step(session, cert, "authorizing")


def _tasks(found: Sequence[Challenge], overrides: dict[str, Any]) -> list[ChallengeTask]:
    """One task per authorization still to validate. One offering only dns-persist-01 gets
    an empty ``txt_value``: :func:`_choose_persist` answers it or fails the order."""
    tasks: list[ChallengeTask] = []
    for ch in found:
        if ch.valid:
            continue
        if ch.txt_value is None and not ch.persist_url:
            raise IssuerError(f"the CA offers no dns-01 challenge for {ch.name}")
        target = overrides.get(ch.name) or overrides.get(ch.identifier)
        if not target:
            raise CertAutoPilotError(f"no DNS zone is recorded for {ch.name}")
        tasks.append(
            ChallengeTask(
                name=ch.name,
                txt_name=target.get("challenge_name") or ch.txt_name,
                txt_value=ch.txt_value or "",
                zone_id=target["zone_id"],
                manual=bool(target.get("manual")),
                zone=target.get("zone") or "",
                delegated_from=target.get("delegated_from"),
                authz_url=ch.authz_url,
                challenge_url=ch.challenge_url,
                needs_answer=ch.needs_answer,
            )
        )
    return tasks


def _choose_persist(
    version_id: str, ca: CertificateAuthority, found: list[Challenge], tasks: list[ChallengeTask]
) -> list[ChallengeTask]:
    """Manual-zone names whose authorization offers dns-persist-01 and whose
    ``_validation-persist`` record checks out on every authoritative server go through that
    challenge: nobody has to publish anything. The others stay manual dns-01, as without
    it, with the reason on the timeline (``dns.persist.skipped``). The record is checked
    first because the CA would fail the authorization, and with it the order, on a bad one
    (draft-ietf-acme-dns-persist-02 §9.3.1, §9.4)."""
    offered = {c.name: c for c in found if c.persist_url and not c.valid}
    candidates = [t for t in tasks if t.manual and t.name in offered]
    reasons: dict[str, str] = {}
    chosen: dict[str, ChallengeTask] = {}
    if candidates and DNS_PERSIST in ca.capabilities and isinstance(ca, PersistCapable):
        events: list[tuple[EventType, dict[str, Any]]] = []
        try:
            info = persist_info(ca.persist_account())
        except CertAutoPilotError as exc:
            info, why = None, f"could not read the CA's directory: {exc}"
            for t in candidates:
                reasons[t.name] = why
                events.append((EventType.DNS_PERSIST_SKIPPED, _persist_detail(t, "unchecked", why)))
        if info is not None:
            with tx() as session:
                try:
                    servers = {t.zone_id: _zone(session, t.zone_id).nameservers for t in candidates}
                except CertAutoPilotError as exc:
                    servers, reasons["*"] = {}, str(exc)
            now = utcnow()
            for t in candidates:
                ch = offered[t.name]
                decision = decide_persist(
                    {"issuerDomainNames": list(ch.persist_issuer_domains)},
                    name=t.name,
                    directory_meta=info.directory_meta,
                    account=info.account,
                    nameservers=servers.get(t.zone_id, ()),
                    now=now,
                )
                why_not = reasons.get("*") if not servers else None
                detail = _persist_detail(t, decision.state.value, why_not or decision.detail)
                if decision.answer:
                    chosen[t.name] = replace(
                        t,
                        manual=False,
                        persist=True,
                        challenge_url=ch.persist_url,
                        needs_answer=ch.persist_needs_answer,
                    )
                    events.append((EventType.DNS_PERSIST_CHECKED, detail))
                else:
                    reasons[t.name] = why_not or decision.detail
                    events.append((EventType.DNS_PERSIST_SKIPPED, detail))
        with tx() as session:
            _, cert = load(session, version_id)
            for kind, detail in events:
                record_event(session, cert, kind, detail)
    result = [chosen.get(t.name, t) for t in tasks]
    for t in result:
        if not t.persist and not t.txt_value:
            why = reasons.get(t.name) or (
                "the service answers it for names on manual zones only"
                if not t.manual
                else "this CA client cannot answer it"
            )
            raise IssuerError(f"the CA offers only dns-persist-01 for {t.name}: {why}")
    return result


def _persist_detail(t: ChallengeTask, status: str, reason: str) -> dict[str, Any]:
    key = "detail" if status in ("ok", "expires_soon") else "reason"
    return {
        "name": t.name,
        "record_name": persist.record_name(t.name),
        "status": status,
        key: reason,
    }


@db_step("dns.request_manual")
def request_manual(version_id: str, tasks: list[ChallengeTask]) -> None:
    records = [TxtRecord(name=t.txt_name, value=t.txt_value).model_dump() for t in tasks]
    with tx() as session:
        _, cert = load(session, version_id)
        cert.status = transition(cert.status, CertStatus.AWAITING_DNS)
        cert.pending_action = ManualDnsAction(
            records=[TxtRecord.model_validate(r) for r in records],
            message="Publish these TXT records at your DNS host, then confirm.",
        ).model_dump(mode="json")
        set_step(session, cert, "awaiting_dns")
        record_event(session, cert, EventType.DNS_MANUAL_REQUESTED, {"records": records})


@db_step("dns.check_manual")
def check_manual(version_id: str, tasks: list[ChallengeTask], confirmed_by: str) -> bool:
    """After "I've added it": True when every record is on the zone's authoritative servers.

    Otherwise the certificate stays ``awaiting_dns`` and its message says what is missing,
    per server, or what could not be checked at all (a zone whose nameservers cannot be
    found): the person fixes it and confirms again; nothing here fails the certificate."""
    handles, unchecked = _manual_zones(tasks)
    checks = [
        _check_detail(t, [observe(t.txt_name, t.txt_value, ns) for ns in handles[t.zone_id]])
        for t in tasks
        if t.zone_id in handles
    ]
    missing = sorted({c["name"] for c in checks if not c["ok"]})
    with tx() as session:
        _, cert = load(session, version_id)
        if checks:
            record_event(
                session,
                cert,
                EventType.DNS_PROPAGATION_CHECKED,
                _check_summary(checks),
                actor=confirmed_by,
            )
        if unchecked or missing:
            message = _manual_message(unchecked, checks)
            cert.pending_action = {**(cert.pending_action or {}), "message": message}
            if unchecked:
                record_event(
                    session,
                    cert,
                    EventType.DNS_MANUAL_UNCHECKED,
                    {"zones": unchecked, "message": message},
                    actor=confirmed_by,
                )
            if missing:
                record_event(
                    session,
                    cert,
                    EventType.DNS_MANUAL_NOT_VISIBLE,
                    {"missing": missing},
                    actor=confirmed_by,
                )
            return False
        cert.status = transition(cert.status, CertStatus.ISSUING)
        cert.pending_action = None
        record_event(session, cert, EventType.DNS_MANUAL_CONFIRMED, {}, actor=confirmed_by)
        set_step(session, cert, "validating")
    return True


NAMESERVER_HINT = "add the zone's nameservers in its settings, or check that the zone is delegated"


def _manual_zones(
    tasks: list[ChallengeTask],
) -> tuple[dict[str, tuple[tuple[str, int], ...]], list[str]]:
    """The authoritative servers of each manual zone, and, for each zone whose servers cannot
    be found, why (``cannot find the nameservers of manual.test: NXDOMAIN — add ...``)."""
    servers: dict[str, tuple[tuple[str, int], ...]] = {}
    unchecked: list[str] = []
    with tx() as session:
        for zone_id in dict.fromkeys(t.zone_id for t in tasks):
            try:
                servers[zone_id] = _zone(session, zone_id).nameservers
            except DNSError as exc:
                unchecked.append(f"{exc} — {NAMESERVER_HINT}")
    return servers, unchecked


def _manual_message(unchecked: list[str], checks: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    if unchecked:
        parts.append("Could not check the records: " + "; ".join(unchecked) + ".")
    missing = [c for c in checks if not c["ok"]]
    if missing:
        seen = [
            f"{c['name']} ("
            + "; ".join(s["summary"] for s in c["servers"] if s["outcome"] != "serves_value")
            + ")"
            for c in missing
        ]
        parts.append(
            "Not visible yet on the zone's authoritative servers: " + ", ".join(seen) + "."
        )
    return " ".join(parts) + " Check the record and confirm again once it is published."


@retrying_step("acme.complete")
def complete(version_id: str, plan: Plan) -> None:
    """Answers the challenges, waits for validation, removes the TXT records ``begin``
    published, finalizes, downloads and stores the chain. Idempotent: a finalized order is
    not finalized again, and a stored version is not stored twice."""
    with tx() as session:
        ca = _ca(session, plan.issuer_id)
        handles = _zones(session, plan.published)
    ca.answer(_order_of(plan), timeout=AUTHORIZATION_TIMEOUT)
    validated_at = utcnow()
    # On an error the records stay for a retry of this step; ``fail`` removes them.
    removed, failed = _remove_records(handles, plan.published)
    chain = ca.finalize(_order_of(plan), plan.csr_pem, timeout=FINALIZE_TIMEOUT)
    pause_point("after_finalize")
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status == VersionStatus.ISSUED:
            return
        _record_publication(
            session, cert, plan.published, plan.published_at, plan.confirmed_at, plan.checks
        )
        validated: dict[str, Any] = {"names": sorted({t.name for t in plan.tasks})}
        if plan.reused:
            validated["reused"] = list(plan.reused)
        record_event(session, cert, EventType.ACME_AUTHORIZATIONS_VALID, validated, at=validated_at)
        _record_removals(session, cert, removed, failed)
        _record_persist(session, cert, plan, validated_at)
        store_issued(session, cert, version, chain)


def _record_persist(session: Session, cert: Certificate, plan: Plan, at: datetime) -> None:
    """Timeline events for names validated through dns-persist-01. When no name waited for a
    person, a certificate that was off auto-renew only because of its manual zone renews on
    its own from now on: its records persist, nobody has to publish anything next time."""
    answered = [t for t in plan.tasks if t.persist]
    for t in answered:
        detail = {"name": t.name, "record_name": persist.record_name(t.name)}
        record_event(session, cert, EventType.DNS_PERSIST_ANSWERED, detail, at=at)
    if answered and not plan.manual and cert.auto_renew_disabled_reason == MANUAL_DNS_REASON:
        cert.auto_renew = True
        cert.auto_renew_disabled_reason = None
        record_event(session, cert, EventType.CERT_AUTO_RENEW_ENABLED, {"reason": "dns-persist-01"})


def _order_of(plan: Plan) -> Order:
    """The order ``begin`` found, rebuilt from the plan's public values."""
    challenges = tuple(
        Challenge(
            name=t.name,
            identifier=t.name.removeprefix("*."),
            txt_name=t.txt_name,
            txt_value=t.txt_value,
            authz_url=t.authz_url,
            challenge_url=t.challenge_url,
            valid=False,
            needs_answer=t.needs_answer,
        )
        for t in plan.tasks
    )
    return Order(plan.order_url, "authorizing" if challenges else "ready", challenges)


def _record_publication(
    session: Session,
    cert: Certificate,
    published: list[ChallengeTask],
    published_at: str | None,
    confirmed_at: str | None,
    checks: tuple[dict[str, Any], ...] = (),
) -> None:
    """Timeline events for records ``begin`` published, stamped with when it happened."""
    if not published:
        return
    at = datetime.fromisoformat(published_at) if published_at else None
    for t in published:
        record_event(
            session,
            cert,
            EventType.DNS_RECORD_PUBLISHED,
            {
                "name": t.txt_name,
                "type": "TXT",
                "value": t.txt_value,
                "zone": t.zone or None,
                "delegated_from": t.delegated_from,
            },
            at=at,
        )
    if confirmed_at and checks:
        record_event(
            session,
            cert,
            EventType.DNS_PROPAGATION_CHECKED,
            _check_summary(list(checks)),
            at=datetime.fromisoformat(confirmed_at),
        )
    if confirmed_at:
        record_event(
            session,
            cert,
            EventType.DNS_PROPAGATION_CONFIRMED,
            {"names": sorted({t.txt_name for t in published})},
            at=datetime.fromisoformat(confirmed_at),
        )


def _remove_records(
    handles: dict[str, ZoneHandle], published: list[ChallengeTask]
) -> tuple[list[ChallengeTask], list[tuple[ChallengeTask, str]]]:
    removed: list[ChallengeTask] = []
    failed: list[tuple[ChallengeTask, str]] = []
    for t in published:
        zone = handles[t.zone_id]
        try:
            zone.provider.remove_txt(zone.name, t.txt_name, t.txt_value)
            removed.append(t)
        except CertAutoPilotError as exc:
            log.warning("could not remove TXT %s: %s", t.txt_name, exc)
            failed.append((t, str(exc)))
    return removed, failed


def _record_removals(
    session: Session,
    cert: Certificate,
    removed: list[ChallengeTask],
    failed: list[tuple[ChallengeTask, str]],
) -> None:
    for t in removed:
        record_event(
            session,
            cert,
            EventType.DNS_RECORD_REMOVED,
            {"name": t.txt_name, "type": "TXT", "value": t.txt_value},
        )
    for t, why in failed:
        record_event(
            session, cert, EventType.DNS_RECORD_CLEANUP_FAILED, {"name": t.txt_name, "error": why}
        )


@db_step("cert.fail")
def fail(
    version_id: str,
    plan: Plan | None,
    title: str,
    detail: str,
    problem_type: str | None,
    retry_after: float | None = None,
) -> None:
    """Removes any TXT record still published, then marks the version and certificate failed."""
    published = plan.published if plan else []
    with tx() as session:
        version, cert = load(session, version_id)
        if version.status == VersionStatus.ISSUED:
            return
        handles = _zones(session, published)
    removed, failed = _remove_records(handles, published)
    with tx() as session:
        version, cert = load(session, version_id)
        if plan is not None:
            _record_publication(
                session, cert, published, plan.published_at, plan.confirmed_at, plan.checks
            )
        _record_removals(session, cert, removed, failed)
        version.status = transition_version(version.status, VersionStatus.FAILED)
        cert.status = transition(cert.status, CertStatus.FAILED)
        cert.pending_action = None
        cert.error = CertificateError(
            title=title,
            detail=detail,
            type=problem_type,
            retry_after=retry_after,  # the renewal backoff honours it
        ).model_dump(mode="json")
        set_step(session, cert, None)
        record_event(
            session,
            cert,
            EventType.CERT_FAILED,
            {"title": title, "detail": detail, "type": problem_type, "version": version.seq},
        )
        _tell_requester(session, cert, title, detail)
        counted.issuance_ended(session, cert, version, outcome="failed", problem_type=problem_type)


def _tell_requester(session: Session, cert: Certificate, title: str, detail: str) -> None:
    """Notifies whoever requested the certificate that its issuance failed."""
    requester = session.get(User, cert.created_by)
    project = session.get(Project, cert.project_id)
    base = runtime().settings.public_url
    notifications.notify(
        session,
        launcher(),
        project_id=cert.project_id,
        event=EventType.CERT_FAILED,
        recipients=[requester.email] if requester else [],
        certificate_id=cert.id,
        link=links.certificate(project.slug if project else cert.project_id, cert.id, base=base),
        subject=f"Certificate for {cert.common_name} failed: {title}",
        text=detail,
    )
