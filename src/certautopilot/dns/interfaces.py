"""Ports of the DNS domain: what a DNS provider plugin implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class DNSProvider(Protocol):
    """Publishes and removes ACME DNS-01 TXT records in one zone.

    Both calls are idempotent: publishing a value that is already there, or removing one
    that is gone, succeeds. Other TXT values at the same name are left alone (several
    authorizations, e.g. ``example.test`` and ``*.example.test``, share one name).
    Errors are raised as :class:`certautopilot.errors.DNSError`.
    """

    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None: ...

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None: ...
