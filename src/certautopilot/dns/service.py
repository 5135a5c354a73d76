"""DNS zones of a project, the provider that publishes in each, and challenge-zone lookup.

Providers are plugins (``certautopilot.dns_providers``): this module finds the zone's
provider class in the registry, validates the zone's settings with the class's config
model and builds the provider from them; it imports no provider module.

Storage: ``zone.config`` is ``{"settings": <non-secret settings>, "credentials": [names]}``
and the secret settings are one encrypted JSON document (purpose ``dns_settings``). Zones
written before plugins (rfc2136 only) hold the non-secret settings flat in ``zone.config``
and the TSIG secret alone under purpose ``tsig_secret``; both forms are read (an edit
rewrites such a zone in the newer form).

Lifecycle: adding and editing are plan (validate, reads only) -> :func:`check_zone` (the
provider authenticates and lists records; network I/O, so the caller ends its transaction
first) -> store and audit, like issuers' check-then-create. Deleting is refused while a
certificate routes a challenge to the zone; disabling (:func:`set_enabled`) keeps the zone
and its certificates but writes nothing in it: routing refuses its names
(``certificates.zones``), a renewal by hand is a 409 and the scheduler defers renewals
(:func:`disabled_zones_of`). :func:`prepare_test` + :func:`run_zone_test`
write, read everywhere and remove a probe record (:mod:`certautopilot.dns.probe`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from dns.resolver import Resolver
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates.models import Certificate
from certautopilot.certificates.names import base_name, normalize_name
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.base import new_id
from certautopilot.dns import probe
from certautopilot.dns.interfaces import DNSProvider
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import find_zone, parse_nameserver
from certautopilot.dns.schemas import (
    DNSProviderOut,
    ProviderField,
    RFC2136Out,
    ZoneIn,
    ZoneOut,
    ZonePatch,
    ZoneSuggestion,
    ZoneTestOut,
)
from certautopilot.errors import Conflict, DNSError, InvalidInput, NotFound
from certautopilot.issuers import interfaces as issuer_port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.netguard import check_host
from certautopilot.plugins import Family, Plugin, registry

OWNER_TABLE = "dns_zones"
PURPOSE = "dns_settings"
LEGACY_PURPOSE = "tsig_secret"  # rfc2136 zones stored before provider plugins
LEGACY_BLOCK = "rfc2136"


def provider_plugin(name: str, *, field: str = "provider") -> Plugin:
    """The DNS provider plugin ``name``; unknown: a 422 on ``field`` listing the known."""
    return registry().get(Family.DNS_PROVIDERS, name, field=field)


def is_manual(zone: DnsZone) -> bool:
    """Whether a person publishes this zone's records (the provider's ``manual`` flag)."""
    plugin = registry().family(Family.DNS_PROVIDERS).get(zone.provider)
    return bool(plugin is not None and getattr(plugin.cls, "manual", False))


def _settings_of(body: ZoneIn) -> tuple[Mapping[str, Any], str, list[tuple[str, str]]]:
    """(raw settings, the field that holds them, errors) for both body forms."""
    if body.rfc2136 is None:
        return body.settings or {}, "settings", []
    if body.provider != LEGACY_BLOCK:
        return {}, "settings", [(LEGACY_BLOCK, "only applies when provider is rfc2136")]
    if body.settings is not None:
        return {}, "settings", [("settings", "give settings or rfc2136, not both")]
    return body.rfc2136, LEGACY_BLOCK, []


def _validate(body: ZoneIn) -> tuple[str, list[str], Plugin, BaseModel, str]:
    errors: list[tuple[str, str]] = []
    try:
        name = normalize_name(body.name)
        if name.startswith("*."):
            raise ValueError("must not be a wildcard")
    except ValueError as exc:
        errors.append(("name", f"{body.name!r} {exc}"))
        name = ""
    nameservers: list[str] = []
    for i, ns in enumerate(body.nameservers or []):
        try:
            host, port = parse_nameserver(ns)
            nameservers.append(f"{host}:{port}")
        except (ValueError, InvalidInput) as exc:
            errors.append((f"nameservers[{i}]", str(exc)))
    config: BaseModel | None = None
    plugin: Plugin | None = None
    raw, prefix, settings_errors = _settings_of(body)
    errors += settings_errors
    try:
        plugin = provider_plugin(body.provider)
        if body.provider == LEGACY_BLOCK and body.rfc2136 is None and body.settings is None:
            errors.append((LEGACY_BLOCK, "is required when provider is rfc2136"))
        elif not settings_errors:
            config = plugin.parse_config(raw, field_prefix=prefix)
    except InvalidInput as exc:
        errors += exc.errors
    if errors or plugin is None or config is None:
        raise InvalidInput("the zone is not valid", errors)
    return name, nameservers, plugin, config, prefix


def _plugin_validation(plugin: Plugin, config: BaseModel, prefix: str) -> None:
    """The plugin's own save-time rules (e.g. the SSRF guard on its server), if it has any."""
    hook = getattr(plugin.cls, "validate", None)
    if callable(hook):
        cast(Callable[[BaseModel, str], None], hook)(config, prefix)


def _split(plugin: Plugin, config: BaseModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings stored in the clear, secret settings stored encrypted)."""
    names = plugin.secrets
    public = config.model_dump(mode="json", exclude=set(names))
    hidden = {k: v for k in names if (v := getattr(config, k)) is not None}
    return public, hidden


@dataclass(frozen=True)
class ZonePlan:
    """A zone body that passed validation, not yet checked at its provider nor stored.

    Built by :func:`plan_new_zone` or :func:`plan_edit` (reads only), checked by
    :func:`check_zone` (network I/O: call it outside any transaction), stored by
    :func:`create_zone` or :func:`update_zone`.
    """

    name: str
    nameservers: list[str]
    plugin: Plugin
    config: BaseModel
    prefix: str
    propagation_timeout_seconds: int
    changed: tuple[str, ...] = ()
    rotate_secrets: bool = True


def _checked_hosts(plugin: Plugin, config: BaseModel, prefix: str, nameservers: list[str]) -> None:
    _plugin_validation(plugin, config, prefix)
    for i, ns in enumerate(nameservers):
        check_host(ns.rsplit(":", 1)[0].strip("[]"), field=f"nameservers[{i}]")


def _refuse_duplicate(session: Session, project_id: str, name: str) -> None:
    if session.scalar(
        select(DnsZone.id).where(DnsZone.project_id == project_id, DnsZone.name == name)
    ):
        raise Conflict(f"zone {name} exists in this project already")


def plan_new_zone(session: Session, *, project_id: str, body: ZoneIn) -> ZonePlan:
    """Validates a new zone's body (422 naming fields; 409 for a name taken)."""
    name, nameservers, plugin, config, prefix = _validate(body)
    _checked_hosts(plugin, config, prefix, nameservers)
    _refuse_duplicate(session, project_id, name)
    return ZonePlan(name, nameservers, plugin, config, prefix, body.propagation_timeout_seconds)


def check_zone(plan: ZonePlan) -> None:
    """Network I/O, outside any transaction: the provider authenticates and lists records.

    A refused credential is a 422 on its field with the provider's words (the provider
    raises that); any other failure (server unreachable, zone not served there) is a 422
    on the settings, since the zone as given cannot be used.
    """
    provider = plan.plugin.cls(plan.config)
    assert isinstance(provider, DNSProvider)
    try:
        provider.check(plan.name)
    except InvalidInput as exc:  # providers name settings.<field>; the body may say rfc2136
        errors = [(_under(plan.prefix, f), m) for f, m in exc.errors]
        raise InvalidInput(str(exc), errors) from None
    except DNSError as exc:
        raise InvalidInput.field(plan.prefix, f"the zone could not be checked: {exc}") from None


def _under(prefix: str, field: str) -> str:
    head, dot, rest = field.partition(".")
    return f"{prefix}.{rest}" if head == "settings" and dot else field


def create_zone(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, plan: ZonePlan, actor: Actor
) -> DnsZone:
    """Stores the zone :func:`check_zone` vetted, and audits it. The caller commits."""
    require(actor, "admin", "Adding a DNS zone")
    _refuse_duplicate(session, project_id, plan.name)
    public, hidden = _split(plan.plugin, plan.config)
    zone = DnsZone(
        id=new_id(),
        project_id=project_id,
        name=plan.name,
        provider=plan.plugin.name,
        nameservers=plan.nameservers,
        propagation_timeout_seconds=plan.propagation_timeout_seconds,
        config={"settings": public, "credentials": sorted(hidden)},
    )
    if hidden:
        zone.credentials_secret_id = _store_hidden(session, kek, zone.id, hidden)
    session.add(zone)
    audit.record(
        session,
        type=EventType.ZONE_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="zone",
        subject_id=zone.id,
        detail={"name": plan.name, "provider": plan.plugin.name},
    )
    return zone


def _store_hidden(
    session: Session, kek: KeyEncryptionKey, zone_id: str, hidden: dict[str, Any]
) -> str:
    return secrets.store_secret(
        session,
        kek,
        owner_table=OWNER_TABLE,
        owner_id=zone_id,
        purpose=PURPOSE,
        plaintext=json.dumps(hidden).encode(),
    ).id


def plan_edit(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, zone_id: str, patch: ZonePatch
) -> ZonePlan:
    """The zone as it will be after ``patch``: settings merged key by key over the stored
    ones (secrets decrypted in memory only), validated like a new zone's."""
    zone = get_zone(session, project_id=project_id, zone_id=zone_id)
    plugin = provider_plugin(zone.provider)
    given = patch.model_dump(exclude_unset=True)
    errors: list[tuple[str, str]] = []
    prefix = "settings"
    raw: dict[str, Any] | None = patch.settings
    if patch.rfc2136 is not None:
        if zone.provider != LEGACY_BLOCK:
            errors.append((LEGACY_BLOCK, "only applies when provider is rfc2136"))
        elif patch.settings is not None:
            errors.append(("settings", "give settings or rfc2136, not both"))
        raw, prefix = patch.rfc2136, LEGACY_BLOCK
    if errors:
        raise InvalidInput("the zone edit is not valid", errors)
    public, _ = _stored(zone)
    current = {**public, **_reveal(session, kek, zone)}
    changes = dict(raw or {})
    config = plugin.parse_config({**current, **changes}, field_prefix=prefix)
    nameservers = list(zone.nameservers)
    if patch.nameservers is not None:
        nameservers = []
        for i, ns in enumerate(patch.nameservers):
            try:
                host, port = parse_nameserver(ns)
                nameservers.append(f"{host}:{port}")
            except (ValueError, InvalidInput) as exc:
                errors.append((f"nameservers[{i}]", str(exc)))
    if errors:
        raise InvalidInput("the zone edit is not valid", errors)
    _checked_hosts(plugin, config, prefix, nameservers)
    changed = [f"{prefix}.{k}" for k in sorted(changes)]
    changed += [k for k in ("nameservers", "propagation_timeout_seconds") if k in given]
    legacy = bool(zone.credentials_secret_id) and not isinstance(
        (zone.config or {}).get("credentials"), list
    )
    return ZonePlan(
        name=zone.name,
        nameservers=nameservers,
        plugin=plugin,
        config=config,
        prefix=prefix,
        propagation_timeout_seconds=patch.propagation_timeout_seconds
        or zone.propagation_timeout_seconds,
        changed=tuple(changed),
        rotate_secrets=legacy or any(k in plugin.secrets for k in changes),
    )


def update_zone(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    zone_id: str,
    plan: ZonePlan,
    actor: Actor,
) -> DnsZone:
    """Stores the checked edit. A given secret is a new encrypted blob and the old
    ciphertext is deleted; the audit names the fields, never their values. The worker's
    cached provider is keyed by a fingerprint of these columns, so it is rebuilt."""
    zone = get_zone(session, project_id=project_id, zone_id=zone_id)
    public, hidden = _split(plan.plugin, plan.config)
    zone.config = {"settings": public, "credentials": sorted(hidden)}
    zone.nameservers = plan.nameservers
    zone.propagation_timeout_seconds = plan.propagation_timeout_seconds
    if plan.rotate_secrets:
        old = zone.credentials_secret_id
        zone.credentials_secret_id = (
            _store_hidden(session, kek, zone.id, hidden) if hidden else None
        )
        if old:
            row = session.get(StoredSecret, old)
            if row is not None:
                secrets.delete_secret(
                    session, old, owner_table=OWNER_TABLE, owner_id=zone.id, purpose=row.purpose
                )
    _record_update(session, zone, actor, {"fields": list(plan.changed)})
    return zone


def _record_update(session: Session, zone: DnsZone, actor: Actor, detail: dict[str, Any]) -> None:
    """``zone.updated``: the fields changed, never their values."""
    audit.record(
        session,
        type=EventType.ZONE_UPDATED,
        actor=actor.email,
        project_id=zone.project_id,
        subject_type="zone",
        subject_id=zone.id,
        detail={"name": zone.name, **detail},
    )


def certificates_using(session: Session, zone: DnsZone) -> list[tuple[str, str]]:
    """(id, common name) of the certificates whose challenges go to ``zone``: by their
    stored routing (zone id per name) or, for a name with none stored, by longest suffix
    among the project's zones. Reads four columns only (inventories can be large)."""
    names = [z.name for z in list_zones(session, project_id=zone.project_id)]
    using: list[tuple[str, str]] = []
    stmt = (
        select(
            Certificate.id,
            Certificate.common_name,
            Certificate.names,
            Certificate.challenge_overrides,
        )
        .where(Certificate.project_id == zone.project_id)
        .order_by(Certificate.common_name, Certificate.id)
    )
    for cert_id, common_name, cert_names, overrides in session.execute(stmt):
        for name in cert_names or []:
            routed = (overrides or {}).get(name)
            if isinstance(routed, dict) and routed.get("zone_id"):
                hit = routed["zone_id"] == zone.id
            else:
                hit = find_zone(name, names) == zone.name
            if hit:
                using.append((cert_id, common_name))
                break
    return using


def delete_zone(session: Session, *, project_id: str, zone_id: str, actor: Actor) -> None:
    """Deletes a zone no certificate uses (409 naming them otherwise), with its secret."""
    zone = get_zone(session, project_id=project_id, zone_id=zone_id)
    users = certificates_using(session, zone)
    if users:
        shown = ", ".join(f"{cert_id} ({cn})" for cert_id, cn in users[:20])
        more = f" and {len(users) - 20} more" if len(users) > 20 else ""
        raise Conflict(
            f"zone {zone.name} is still used by {len(users)} certificate(s): {shown}{more}; "
            "delete them or move their names to another zone first"
        )
    if zone.credentials_secret_id:
        row = session.get(StoredSecret, zone.credentials_secret_id)
        if row is not None:
            secrets.delete_secret(
                session,
                row.id,
                owner_table=OWNER_TABLE,
                owner_id=zone.id,
                purpose=row.purpose,
            )
    audit.record(
        session,
        type=EventType.ZONE_DELETED,
        actor=actor.email,
        project_id=project_id,
        subject_type="zone",
        subject_id=zone.id,
        detail={"name": zone.name, "provider": zone.provider},
    )
    session.delete(zone)


# -- disabling ------------------------------------------------------------------------------


def disabled_message(zone: DnsZone) -> str:
    return (
        f"zone {zone.name} is disabled, so no DNS-01 record can be written in it: an admin "
        "can enable it again in Settings → DNS zones"
    )


def set_enabled(
    session: Session, *, project_id: str, zone_id: str, enabled: bool, actor: Actor
) -> DnsZone:
    """Disables (nothing is written in it) or enables the zone, audited. The caller
    commits. Records already published by a running issuance are still removed."""
    require(actor, "admin", "Disabling or enabling a DNS zone")
    zone = get_zone(session, project_id=project_id, zone_id=zone_id)
    if zone.enabled == enabled:
        return zone
    zone.enabled = enabled
    _record_update(session, zone, actor, {"fields": ["enabled"], "enabled": enabled})
    return zone


def disabled_zones_of(session: Session, cert: Certificate, issuer: Issuer) -> list[DnsZone]:
    """The disabled zones ``cert``'s challenges go to: by the stored routing (zone id per
    name) or, for a name with none stored, by longest suffix; none when ``issuer``
    validates no name by DNS-01 (AD CS). One indexed read when the project has no disabled
    zone (the usual case, and the scheduler's per-renewal cost)."""
    if not issuers.has(issuer, issuer_port.DNS01):
        return []
    zones = list_zones(session, project_id=cert.project_id)
    off = {z.id: z for z in zones if not z.enabled}
    if not off:
        return []
    by_name = {z.name: z for z in zones}
    ids = {z.id for z in zones}
    found: dict[str, DnsZone] = {}
    for name in cert.names or []:
        routed = (cert.challenge_overrides or {}).get(name)
        if isinstance(routed, dict) and routed.get("zone_id") in ids:
            zone_id = str(routed["zone_id"])
        else:
            own = find_zone(base_name(name), list(by_name))
            zone_id = by_name[own].id if own is not None else ""
        if zone_id in off:
            found[zone_id] = off[zone_id]
    return sorted(found.values(), key=lambda z: z.name)


def refuse_if_disabled(session: Session, cert: Certificate, issuer: Issuer) -> None:
    """A 409 naming the zone when a challenge of ``cert`` would be written in a disabled
    zone (a renewal or retry by hand; creation is refused by routing with a 422)."""
    off = disabled_zones_of(session, cert, issuer)
    if off:
        raise Conflict("; ".join(disabled_message(z) for z in off))


def list_zones(session: Session, *, project_id: str) -> list[DnsZone]:
    stmt = select(DnsZone).where(DnsZone.project_id == project_id).order_by(DnsZone.name)
    return list(session.scalars(stmt))


def get_zone(session: Session, *, project_id: str, zone_id: str) -> DnsZone:
    zone = session.get(DnsZone, zone_id)
    if zone is None or zone.project_id != project_id:
        raise NotFound(f"no zone {zone_id!r} in this project")
    return zone


def _stored(zone: DnsZone) -> tuple[dict[str, Any], list[str]]:
    """(non-secret settings, names of secret settings) in either storage form."""
    cfg = dict(zone.config or {})
    if isinstance(cfg.get("settings"), dict) and isinstance(cfg.get("credentials"), list):
        return dict(cfg["settings"]), [str(c) for c in cfg["credentials"]]
    legacy = [LEGACY_PURPOSE] if zone.credentials_secret_id else []
    return cfg, legacy


def _reveal(session: Session, kek: KeyEncryptionKey, zone: DnsZone) -> dict[str, Any]:
    if not zone.credentials_secret_id:
        return {}
    row = session.get(StoredSecret, zone.credentials_secret_id)
    purpose = row.purpose if row is not None else PURPOSE
    plaintext = secrets.reveal_secret(
        session,
        kek,
        zone.credentials_secret_id,
        owner_table=OWNER_TABLE,
        owner_id=zone.id,
        purpose=purpose,
    )
    if purpose == LEGACY_PURPOSE:
        return {LEGACY_PURPOSE: plaintext.decode()}
    loaded = json.loads(plaintext)
    assert isinstance(loaded, dict)
    return loaded


def provider_for(session: Session, kek: KeyEncryptionKey, zone: DnsZone) -> DNSProvider:
    """Builds the zone's provider with its credentials decrypted in memory only."""
    plugin = registry().family(Family.DNS_PROVIDERS).get(zone.provider)
    if plugin is None:
        raise NotFound(f"zone {zone.name} has no usable provider {zone.provider!r}")
    public, _ = _stored(zone)
    try:
        config = plugin.config_model.model_validate({**public, **_reveal(session, kek, zone)})
    except ValidationError:
        raise NotFound(
            f"zone {zone.name} has no usable settings for provider {zone.provider!r}"
        ) from None
    provider = plugin.cls(config)
    assert isinstance(provider, DNSProvider)
    return provider


def to_out(zone: DnsZone) -> ZoneOut:
    settings, credentials = _stored(zone)
    rfc = RFC2136Out.model_validate(settings) if zone.provider == LEGACY_BLOCK else None
    return ZoneOut(
        id=zone.id,
        name=zone.name,
        provider=zone.provider,
        settings=settings,
        credentials=credentials,
        nameservers=zone.nameservers,
        propagation_timeout_seconds=zone.propagation_timeout_seconds,
        enabled=zone.enabled,
        rfc2136=rfc,
    )


def describe_provider(plugin: Plugin) -> DNSProviderOut:
    """A provider as the zone form shows it: its fields, which are required and secret."""
    secret = set(plugin.secrets)
    fields = [
        ProviderField(
            name=name,
            required=info.is_required(),
            secret=name in secret,
            help=info.description or "",
        )
        for name, info in plugin.config_model.model_fields.items()
    ]
    return DNSProviderOut(
        name=plugin.name,
        title=plugin.title,
        fields=fields,
        tested=bool(getattr(plugin.cls, "tested", False)),
    )


FIRST_PROVIDERS = ("rfc2136", "manual")


def provider_plugins() -> list[Plugin]:
    """The DNS provider plugins in the order forms show them: rfc2136, manual, then the
    rest by name."""
    plugins = list(registry().family(Family.DNS_PROVIDERS).values())

    def key(p: Plugin) -> tuple[int, str]:
        first = p.name in FIRST_PROVIDERS
        return (FIRST_PROVIDERS.index(p.name) if first else len(FIRST_PROVIDERS), p.name)

    return sorted(plugins, key=key)


def list_providers() -> list[DNSProviderOut]:
    return [describe_provider(p) for p in provider_plugins()]


# -- Test and suggest ----------------------------------------------------------------------
@dataclass(frozen=True)
class ZoneProbe:
    """What a zone's Test needs, read inside a transaction (credentials in memory only)."""

    name: str
    provider: DNSProvider
    nameservers: tuple[str, ...]
    timeout_seconds: int
    manual: bool


def prepare_test(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, zone_id: str
) -> ZoneProbe:
    zone = get_zone(session, project_id=project_id, zone_id=zone_id)
    return ZoneProbe(
        name=zone.name,
        provider=provider_for(session, kek, zone),
        nameservers=tuple(zone.nameservers),
        timeout_seconds=zone.propagation_timeout_seconds,
        manual=is_manual(zone),
    )


def run_zone_test(probe_input: ZoneProbe, *, resolver: Resolver | None = None) -> ZoneTestOut:
    """Network I/O, outside any transaction: write, read everywhere, remove a probe TXT."""
    return probe.run_zone_test(
        probe_input.provider,
        zone=probe_input.name,
        nameservers=probe_input.nameservers,
        timeout_seconds=probe_input.timeout_seconds,
        manual=probe_input.manual,
        resolver=resolver,
    )


def zone_for_name(session: Session, *, project_id: str, name: str) -> DnsZone | None:
    """The project zone holding ``name`` (longest suffix), if any; 422 for a bad name."""
    try:
        wanted = normalize_name(name)
    except ValueError as exc:
        raise InvalidInput.field("name", f"{name!r} {exc}") from None
    zones = list_zones(session, project_id=project_id)
    found = find_zone(wanted, [z.name for z in zones])
    return next((z for z in zones if z.name == found), None)


def suggest_zone(
    name: str, found: DnsZone | None, *, resolver: Resolver | None = None
) -> ZoneSuggestion:
    """For a name in a project zone: that zone. Otherwise (network I/O, outside any
    transaction) the apex found by walking up SOA records, to add as a zone."""
    if found is not None:
        return ZoneSuggestion(
            name=name, zone=found.name, zone_id=found.id, apex=None, detail="in a zone already"
        )
    apex, why = probe.apex_or_reason(name, resolver=resolver)
    detail = why or f"not in a zone of this project; add zone {apex}"
    return ZoneSuggestion(name=name, zone=None, zone_id=None, apex=apex, detail=detail)
