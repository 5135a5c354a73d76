"""The installed plugins of every family and the DNS providers a zone may name.

Read from the plugin registry (entry points), so a package that registers a plugin shows
here with its config schema and no change to the core.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from certautopilot.api.deps import CurrentUser
from certautopilot.dns import service as zones
from certautopilot.dns.schemas import DNSProviderOut
from certautopilot.plugins import listing

router = APIRouter(tags=["plugins"])


@router.get("/plugins")
def list_plugins(user: CurrentUser) -> dict[str, list[dict[str, Any]]]:
    """``{"issuers": [...], "dns_providers": [...], ...}``; each item has its
    ``name``, ``title``, ``source`` (the distribution) and ``config_schema``."""
    return listing()


@router.get("/dns-providers", response_model=list[DNSProviderOut])
def list_dns_providers(user: CurrentUser) -> list[DNSProviderOut]:
    return zones.list_providers()
