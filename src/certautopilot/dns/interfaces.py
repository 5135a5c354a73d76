"""Ports of the DNS domain: the contract every DNS provider plugin implements.

A provider is one class registered under the ``certautopilot.dns_providers`` entry-point
group (see :mod:`certautopilot.plugins`). The core never imports a provider module: it
finds the class by the zone's ``provider`` name, validates the zone's ``settings`` with the
class's ``config_model`` (secret fields declared with ``secret_field`` are stored
encrypted and never returned) and builds the provider with that validated model.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel


@runtime_checkable
class DNSProvider(Protocol):
    """Publishes and removes ACME DNS-01 TXT records in one zone.

    ``publish_txt`` and ``remove_txt`` are idempotent: publishing a value that is already
    there, or removing one that is gone, succeeds. Other TXT values at the same name are
    left alone (several authorizations, e.g. ``example.test`` and ``*.example.test``, share
    one name). Errors are raised as :class:`certautopilot.errors.DNSError`.

    Class attributes: ``name`` (what a zone body names in ``provider``), ``title``,
    ``config_model``, ``manual`` (True only for the manual provider: a person publishes the
    record and the core waits for their confirmation) and ``tested`` (the provider is
    tested in this repository against a real server).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    manual: ClassVar[bool]
    tested: ClassVar[bool]

    def __init__(self, config: Any) -> None: ...

    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None: ...

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None: ...

    def list_txt(self, zone: str, fqdn: str) -> list[str]:
        """The TXT values published at ``fqdn`` now, read through the provider's API or a
        direct query to its server (not a cache or a recursive resolver)."""
        ...

    def check(self, zone: str) -> None:
        """Authenticates and lists records of ``zone``. A rejected credential raises
        ``InvalidInput`` naming ``settings.<field>`` with the provider's own message; any
        other trouble raises ``DNSError``."""
        ...
