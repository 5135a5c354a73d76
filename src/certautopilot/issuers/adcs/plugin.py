"""The AD CS issuer plugin (entry point ``adcs`` of ``certautopilot.issuers``).

Web Enrollment as the issuer port: ``order`` submits the CSR with the template
(``OrderOptions.profile``) to ``certfnsh.asp``; the CA issues at once (state "issued") or
takes it under submission for a CA manager (state "pending", ``ref`` = the request id);
``poll`` asks ``certnew.cer`` about the request; ``finalize`` downloads the certificate and
the CA chain (``certnew.p7b``) and checks the certificate is for the CSR's key. There are no
challenges, no revocation (Web Enrollment offers none: :class:`RevocationUnsupported`) and
no renewal information. The approval deadline, the re-check interval, the request rows and
the audit trail are the workflow's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certautopilot.errors import CertAutoPilotError, IssuerError
from certautopilot.issuers import interfaces as port
from certautopilot.issuers.adcs import client as adcs_client
from certautopilot.issuers.adcs import pages
from certautopilot.issuers.adcs.client import AdcsClient, Issued
from certautopilot.issuers.adcs.schemas import AdcsIssuerIn
from certautopilot.issuers.interfaces import (
    Order,
    OrderOptions,
    RequestDenied,
    RequestUnknown,
    RevocationUnsupported,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from certautopilot.crypto.interfaces import KeyEncryptionKey
    from certautopilot.issuers.models import Issuer
    from certautopilot.renewal.ari import RenewalInfo


def denial_text(request_id: int | str | None, template: str | None, message: str) -> str:
    which = f"request {request_id}" if request_id is not None else "the request"
    what = f" (template {template})" if template else ""
    return f"The CA denied {which}{what}: {message}"


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class AdcsAuthority:
    """One AD CS Web Enrollment endpoint with its credentials, as the issuer port."""

    capabilities: frozenset[str]

    def __init__(self, client: AdcsClient, *, templates: tuple[str, ...] = ()) -> None:
        self.client = client
        self.capabilities = AdcsPlugin.capabilities
        self.templates = templates  # the issuer's templates, which check() looks for

    def order(self, csr_pem: str, options: OrderOptions) -> Order:
        template = options.profile
        if not template:
            raise IssuerError("an AD CS request needs a template", adcs_client.PT_UNKNOWN_TEMPLATE)
        with self.client.session() as ca:
            submission = ca.submit(csr_pem, template)
        rid = submission.request_id
        if submission.kind in ("issued", "pending") and rid is not None:
            state: port.OrderState = "issued" if submission.kind == "issued" else "pending"
            return Order(str(rid), state, detail=submission.message or None)
        if submission.kind == "denied":
            raise RequestDenied(
                denial_text(rid, template, submission.message),
                adcs_client.PT_UNKNOWN_TEMPLATE
                if submission.unknown_template
                else adcs_client.PT_DENIED,
                None,
                str(rid) if rid is not None else None,
                submission.message,
            )
        raise IssuerError(
            f"the CA answered the submission with a page this service does not recognise: "
            f"{submission.message}",
            adcs_client.PT_UNEXPECTED,
        )

    def poll(self, ref: str) -> Order:
        with self.client.session() as ca:
            fetched = ca.fetch(int(ref))
        if isinstance(fetched, Issued):
            return Order(ref, "issued")
        if fetched.kind == "pending":
            return Order(ref, "pending", detail=fetched.message or None)
        if fetched.kind == "denied":
            raise RequestDenied(
                denial_text(ref, None, fetched.message),
                adcs_client.PT_DENIED,
                None,
                ref,
                fetched.message,
            )
        if fetched.kind == "not_found":
            raise RequestUnknown(
                f"the CA does not know request {ref} any more ({fetched.message})",
                adcs_client.PT_NOT_FOUND,
            )
        raise IssuerError(
            f"certnew.cer for request {ref} answered with a page this service does not "
            f"recognise: {fetched.message}",
            adcs_client.PT_UNEXPECTED,
        )

    def answer(self, order: Order, *, timeout: float) -> None:
        """Nothing to answer: AD CS checks the requester, not the names."""

    def finalize(self, order: Order, csr_pem: str, *, timeout: float) -> str:
        with self.client.session() as ca:
            fetched = ca.fetch(int(order.ref))
            if not isinstance(fetched, Issued):
                raise IssuerError(
                    f"request {order.ref} is not issued ({fetched.kind}: {fetched.message})",
                    adcs_client.PT_UNEXPECTED,
                )
            pool = ca.ca_chain()
        leaf = fetched.certificate
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        if _spki(leaf.public_key()) != _spki(csr.public_key()):
            raise IssuerError(
                f"the CA's certificate for request {order.ref} is not for this "
                f"request's key (subject {leaf.subject.rfc4514_string()})",
                adcs_client.PT_UNEXPECTED,
            )
        return pages.to_pem(pages.order_chain(leaf, pool))

    def revoke(self, cert_pem: str, reason: int) -> None:
        raise RevocationUnsupported(
            "AD CS Web Enrollment offers no revocation: revocation is an operator action "
            "on the CA (Certification Authority console, or certutil -revoke)"
        )

    def renewal_info(self, cert_pem: str) -> RenewalInfo | None:
        return None

    def profiles(self) -> dict[str, str]:
        return {}

    def check(self) -> list[port.CheckStep]:
        """Signs in to Web Enrollment (TLS, credentials, a certsrv site), reads the
        templates this account may enroll in (each of the issuer's must be there), then
        the CA's chain. Submits nothing."""
        steps: list[port.CheckStep] = []
        try:
            with self.client.session() as ca:
                ca.home()
                steps.append(port.CheckStep("sign-in", True, f"signed in to {self.client.base}"))
                offered = ca.templates()
                if offered is None:
                    seen = "the CA does not list its templates to this account; not checked"
                    steps.append(port.CheckStep("templates", True, seen))
                else:
                    known = {t.lower() for t in offered}
                    missing = [t for t in self.templates if t.lower() not in known]
                    listed = ", ".join(offered) or "none"
                    if missing:
                        gone = f"not offered: {', '.join(missing)} (the CA offers {listed})"
                        return [*steps, port.CheckStep("templates", False, gone)]
                    steps.append(port.CheckStep("templates", True, f"offered: {listed}"))
                chain = ca.ca_chain()
        except CertAutoPilotError as exc:
            step = "sign-in" if not steps else "templates" if len(steps) == 1 else "CA chain"
            return [*steps, port.CheckStep(step, False, str(exc))]
        subjects = "; ".join(c.subject.rfc4514_string() for c in chain)
        return [
            *steps,
            port.CheckStep("CA chain", True, f"{len(chain)} certificate(s): {subjects}"),
        ]


class AdcsPlugin:
    """Microsoft AD CS through Web Enrollment (``/certsrv``)."""

    name: ClassVar[str] = "adcs"
    title: ClassVar[str] = "Microsoft AD CS (Web Enrollment)"
    config_model = AdcsIssuerIn
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {port.PENDING_APPROVAL_AT_CA, port.TEMPLATES}
    )

    @classmethod
    def connect(cls, session: Session, kek: KeyEncryptionKey, issuer: Issuer) -> AdcsAuthority:
        from certautopilot.issuers.adcs import service

        return AdcsAuthority(
            AdcsClient(service.settings_for(session, kek, issuer)),
            templates=tuple(issuer.config.get("templates") or ()),
        )
