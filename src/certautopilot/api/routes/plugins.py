"""The installed plugins of every family and the DNS providers a zone may name.

Read from the plugin registry (entry points), so a package that registers a plugin shows
here with its config schema and no change to the core.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI

from certautopilot.deps import CurrentUser
from certautopilot.dns import service as zones
from certautopilot.dns.schemas import DNSProviderOut
from certautopilot.plugins import Family, listing, registry

router = APIRouter(tags=["plugins"])


@router.get("/plugins")
def list_plugins(user: CurrentUser) -> dict[str, list[dict[str, Any]]]:
    """``{"issuers": [...], "dns_providers": [...], ...}``; each item has its
    ``name``, ``title``, ``source`` (the distribution) and ``config_schema``."""
    return listing()


@router.get("/dns-providers", response_model=list[DNSProviderOut])
def list_dns_providers(user: CurrentUser) -> list[DNSProviderOut]:
    return zones.list_providers()


def _hoisted(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved into the document's components (refs rewritten)."""
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    moved: dict[str, Any] = json.loads(text)
    for name, sub in moved.pop("$defs", {}).items():
        components.setdefault(name, sub)
    return moved


def _with_plugins(document: dict[str, Any]) -> dict[str, Any]:
    """Adds each installed plugin's settings schema where a body names the plugin: the
    ``kind``/``provider`` enums and one block per kind (a union built from the registry)."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    reg = registry()
    unions = (
        ("TargetIn", "kind", Family.TARGETS, True),
        ("TargetPatch", "kind", Family.TARGETS, True),
        ("ChannelIn", "kind", Family.NOTIFICATION_CHANNELS, True),
        ("ZoneIn", "provider", Family.DNS_PROVIDERS, False),
    )
    for model, tag, family, block_per_kind in unions:
        body = components.get(model)
        plugins = reg.family(family)
        if body is None or not plugins:
            continue
        props = body.setdefault("properties", {})
        props[tag] = {**props.get(tag, {}), "enum": sorted(plugins)}
        schemas = {name: _hoisted(p.config_schema(), components) for name, p in plugins.items()}
        if block_per_kind:
            for name, schema in schemas.items():
                props[name.replace("-", "_")] = {**schema, "description": f"when {tag} is {name}"}
        else:
            props["settings"] = {
                "anyOf": [{**s, "title": name} for name, s in schemas.items()],
                "description": f"the settings of the {tag} named (GET /api/v1/dns-providers)",
            }
    return document


def install_openapi(app: FastAPI) -> None:
    """Makes ``/openapi.json`` describe the installed plugins' settings, built at start."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_plugins(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
