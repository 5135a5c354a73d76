"""DNS zones of a project, the provider that publishes in each, and challenge-zone lookup.

Providers are plugins (``certautopilot.dns_providers``): this module finds the zone's
provider class in the registry, validates the zone's settings with the class's config
model and builds the provider from them; it imports no provider module.

Storage: ``zone.config`` is ``{"settings": <non-secret settings>, "credentials": [names]}``
and the secret settings are one encrypted JSON document (purpose ``dns_settings``). Zones
written before plugins (rfc2136 only) hold the non-secret settings flat in ``zone.config``
and the TSIG secret alone under purpose ``tsig_secret``; both forms are read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates.names import normalize_name
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.base import new_id
from certautopilot.dns.interfaces import DNSProvider
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import parse_nameserver
from certautopilot.dns.schemas import DNSProviderOut, ProviderField, RFC2136Out, ZoneIn, ZoneOut
from certautopilot.errors import Conflict, InvalidInput, NotFound
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


def create_zone(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, body: ZoneIn, actor: Actor
) -> DnsZone:
    require(actor, "admin", "Adding a DNS zone")
    name, nameservers, plugin, config, prefix = _validate(body)
    _plugin_validation(plugin, config, prefix)
    for i, ns in enumerate(nameservers):
        check_host(ns.rsplit(":", 1)[0].strip("[]"), field=f"nameservers[{i}]")
    if session.scalar(
        select(DnsZone.id).where(DnsZone.project_id == project_id, DnsZone.name == name)
    ):
        raise Conflict(f"zone {name} exists in this project already")
    public, hidden = _split(plugin, config)
    zone = DnsZone(
        id=new_id(),
        project_id=project_id,
        name=name,
        provider=plugin.name,
        nameservers=nameservers,
        propagation_timeout_seconds=body.propagation_timeout_seconds,
        config={"settings": public, "credentials": sorted(hidden)},
    )
    if hidden:
        zone.credentials_secret_id = secrets.store_secret(
            session,
            kek,
            owner_table=OWNER_TABLE,
            owner_id=zone.id,
            purpose=PURPOSE,
            plaintext=json.dumps(hidden).encode(),
        ).id
    session.add(zone)
    audit.record(
        session,
        type=EventType.ZONE_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="zone",
        subject_id=zone.id,
        detail={"name": name, "provider": plugin.name},
    )
    return zone


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


def list_providers() -> list[DNSProviderOut]:
    return [describe_provider(p) for p in registry().family(Family.DNS_PROVIDERS).values()]
