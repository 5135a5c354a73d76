"""The ACME issuer plugin (entry point ``acme`` of ``certautopilot.issuers``).

It adapts :class:`~.client.AcmeClient` to the issuer port
(:class:`~certautopilot.issuers.interfaces.CertificateAuthority`): protocol calls only.
The workflow publishes the DNS-01 records, checks them, removes them and records every
step; this module never touches the database except to reveal the account key in
:meth:`AcmePlugin.connect` (worker memory only).

Clients come from the process-wide pool of :mod:`.client` (one transport - session,
directory, nonces - per directory URL and CA bundle), the one ACME cache of the process:
issuance, revocation and renewal information (:mod:`.info`) all use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from certautopilot.issuers import interfaces as port
from certautopilot.issuers.acme import info
from certautopilot.issuers.acme.client import AcmeClient, get_client
from certautopilot.issuers.acme.keys import load_account_key
from certautopilot.issuers.acme.types import STATUS_INVALID, AcmeOrder, Dns01Challenge
from certautopilot.issuers.interfaces import Challenge, Order, OrderOptions, OrderState
from certautopilot.issuers.schemas import AcmeIssuerIn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from certautopilot.crypto.interfaces import KeyEncryptionKey
    from certautopilot.issuers.models import Issuer
    from certautopilot.renewal.ari import RenewalInfo

_STATES: dict[str, OrderState] = {
    "pending": "authorizing",
    "ready": "ready",
    "processing": "processing",
    "valid": "issued",
}


def _challenge(ch: Dns01Challenge) -> Challenge:
    return Challenge(
        name=ch.requested_name,
        identifier=ch.identifier,
        txt_name=ch.txt_name,
        txt_value=ch.txt_value,
        authz_url=ch.authz_url,
        challenge_url=ch.challenge_url,
        valid=ch.authz_status == "valid",
        needs_answer=ch.needs_answer,
        persist_url=ch.persist_url,
        persist_issuer_domains=ch.persist_issuer_domains,
        persist_needs_answer=ch.persist_needs_answer,
    )


class AcmeAuthority:
    """One ACME account at its CA, as the issuer port."""

    capabilities: frozenset[str]

    def __init__(self, client: AcmeClient, *, ca_bundle_pem: str | None = None) -> None:
        self.client = client
        self.capabilities = AcmePlugin.capabilities
        self._ca_bundle_pem = ca_bundle_pem

    def _order(self, order: AcmeOrder) -> Order:
        from certautopilot.errors import IssuerError

        if order.status == STATUS_INVALID:
            raise IssuerError(
                order.error_detail or "the CA marked the order invalid", order.error_type
            )
        state = _STATES.get(order.status)
        if state is None:
            raise IssuerError(f"unexpected order status {order.status!r} for {order.url}")
        challenges = (
            tuple(_challenge(c) for c in self.client.dns01_challenges(order))
            if state == "authorizing"
            else ()
        )
        return Order(
            order.url,
            state,
            challenges,
            replaces=order.replaces,
            replaces_sent=order.replaces_sent,
            profile=order.profile,
        )

    def order(self, csr_pem: str, options: OrderOptions) -> Order:
        created = self.client.new_order(
            csr_pem.encode(), profile=options.profile, replaces=options.replaces
        )
        return self._order(created)

    def poll(self, ref: str) -> Order:
        return self._order(self.client.get_order(ref))

    def answer(self, order: Order, *, timeout: float) -> None:
        for ch in order.challenges:
            if ch.needs_answer and ch.challenge_url:
                self.client.answer_challenge(ch.challenge_url)
        for url in dict.fromkeys(ch.authz_url for ch in order.challenges):
            self.client.wait_authorization(url, timeout=timeout)

    def persist_account(self) -> port.PersistAccount:
        account_url = self.client.account_url
        if not account_url:
            from certautopilot.errors import IssuerError

            raise IssuerError("the ACME account has no URL yet")
        return port.PersistAccount(
            account_url=account_url,
            key_thumbprint=self.client.account_key_thumbprint(),
            directory_meta=info.raw_meta(self.client.directory_url, self._ca_bundle_pem),
        )

    def finalize(self, order: Order, csr_pem: str, *, timeout: float) -> str:
        return self.client.finalize(order.ref, csr_pem.encode(), timeout=timeout)

    def revoke(self, cert_pem: str, reason: int) -> None:
        self.client.revoke(cert_pem, reason)

    def renewal_info(self, cert_pem: str) -> RenewalInfo | None:
        from certautopilot.renewal.ari_refresh import ari_cert_id_of

        found = info.directory(self.client.directory_url, self._ca_bundle_pem)
        base = info.renewal_info_url(found)
        cert_id = ari_cert_id_of(cert_pem)
        if base is None or cert_id is None:
            return None
        return info.renewal_info(base, cert_id, self.client.directory_url, self._ca_bundle_pem)

    def profiles(self) -> dict[str, str]:
        return info.advertised_profiles(
            info.directory(self.client.directory_url, self._ca_bundle_pem)
        )

    def check(self) -> list[port.CheckStep]:
        """The directory as the CA sends it now (not the cached copy), then a signed
        ``newAccount`` with ``onlyReturnExisting`` (RFC 8555 §7.3.1): a fresh nonce, the
        key's signature, and the CA's word that the account still exists and is usable (a
        deactivated account is refused as ``unauthorized``, §7.3.6). Orders nothing."""
        from certautopilot.errors import CertAutoPilotError

        url = self.client.directory_url
        try:
            found = info.directory(url, self._ca_bundle_pem)
            info.raw_meta(url, self._ca_bundle_pem)  # one GET past the cache: the CA now
        except CertAutoPilotError as exc:
            return [port.CheckStep("directory", False, str(exc))]
        offers = sorted(k for k in found if k != "meta")
        tos = (found.get("meta") or {}).get("termsOfService")
        read = f"read {url}: offers {', '.join(offers)}" + (
            f"; terms of service {tos}" if tos else ""
        )
        steps = [port.CheckStep("directory", True, read)]
        stored = self.client.account_url
        try:
            account = self.client.find_account()
        except CertAutoPilotError as exc:
            return [*steps, port.CheckStep("account", False, f"the CA refused the account: {exc}")]
        if account is None:
            why = (
                "the CA knows no account for this issuer's key (deactivated, or the CA's "
                "data was reset): add the issuer again to register a new account"
            )
            return [*steps, port.CheckStep("account", False, why)]
        if stored and account != stored:
            moved = f"the CA answers account {account}, not the stored {stored}"
            return [*steps, port.CheckStep("account", False, moved)]
        return [*steps, port.CheckStep("account", True, f"account {account} is usable")]


class AcmePlugin:
    """RFC 8555 CAs: Let's Encrypt, Pebble, acme2certifier, ..."""

    name: ClassVar[str] = "acme"
    title: ClassVar[str] = "ACME (RFC 8555)"
    config_model = AcmeIssuerIn
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {
            port.DNS01,
            port.ARI,
            port.PROFILES,
            port.REVOKE,
            port.ORDER_RATE_LIMITS,
            port.DNS_PERSIST,
        }
    )

    @classmethod
    def connect(cls, session: Session, kek: KeyEncryptionKey, issuer: Issuer) -> AcmeAuthority:
        from certautopilot.issuers import service

        jwk = load_account_key(service.account_key_pem(session, kek, issuer))
        bundle = issuer.config.get("ca_bundle_pem")
        client = get_client(
            issuer.config["directory_url"],
            jwk,
            account_url=issuer.config.get("account_url"),
            ca_bundle_pem=bundle,
        )
        return AcmeAuthority(client, ca_bundle_pem=bundle)
