"""Issuers. ACME: the account is registered with the CA when the issuer is created;
AD CS: see ``issuers.adcs.service`` (the CA is checked when it is created or edited)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.errors import (
    Conflict,
    InvalidInput,
    IssuerError,
    NotFound,
    TransientIssuerError,
)
from certautopilot.issuers.acme.client import AcmeClient
from certautopilot.issuers.acme.keys import generate_account_key
from certautopilot.issuers.adcs import service as adcs_service
from certautopilot.issuers.models import Issuer
from certautopilot.issuers.schemas import AcmeIssuerOut, IssuerIn, IssuerOut
from certautopilot.netguard import check_url


@dataclass(frozen=True)
class RegisteredAccount:
    issuer_id: str
    account_url: str
    account_key_pem: bytes


def register_acme_account(body: IssuerIn) -> RegisteredAccount:
    """Network I/O, outside any transaction: a new account key registered with the CA."""
    acme = body.acme
    if acme is None:
        raise InvalidInput.field("acme", "an ACME issuer needs its 'acme' settings")
    check_url(acme.directory_url, field="acme.directory_url")
    if bool(acme.eab_kid) != bool(acme.eab_hmac_key):
        raise InvalidInput.field("acme.eab_hmac_key", "EAB needs both eab_kid and eab_hmac_key")
    jwk, pem = generate_account_key()
    client = AcmeClient(acme.directory_url, jwk, ca_bundle_pem=acme.ca_bundle_pem)
    try:
        url = client.register(
            acme.contact_email, acme.terms_agreed, acme.eab_kid, acme.eab_hmac_key
        )
    except TransientIssuerError:
        raise
    except IssuerError as exc:
        field = (
            "acme.eab_kid"
            if "externalAccount" in (exc.problem_type or "")
            or (acme.eab_kid and "unauthorized" in (exc.problem_type or ""))
            else "acme"
        )
        raise InvalidInput.field(field, f"the CA refused the account: {exc}") from exc
    return RegisteredAccount(issuer_id=new_id(), account_url=url, account_key_pem=pem)


def create_acme_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    body: IssuerIn,
    account: RegisteredAccount,
    actor: Actor,
) -> Issuer:
    if session.scalar(
        select(Issuer.id).where(Issuer.project_id == project_id, Issuer.name == body.name)
    ):
        raise Conflict(f"an issuer named {body.name!r} exists in this project")
    acme = body.acme
    assert acme is not None  # register_acme_account checked it
    issuer = Issuer(
        id=account.issuer_id,
        project_id=project_id,
        name=body.name,
        kind="acme",
        config={
            "directory_url": acme.directory_url,
            "contact_email": acme.contact_email,
            "terms_agreed": acme.terms_agreed,
            "eab_kid": acme.eab_kid,
            "ca_bundle_pem": acme.ca_bundle_pem,
            "account_url": account.account_url,
        },
    )
    issuer.account_key_secret_id = secrets.store_secret(
        session,
        kek,
        owner_table="issuers",
        owner_id=issuer.id,
        purpose="acme_account_key",
        plaintext=account.account_key_pem,
    ).id
    if acme.eab_hmac_key:
        issuer.eab_hmac_secret_id = secrets.store_secret(
            session,
            kek,
            owner_table="issuers",
            owner_id=issuer.id,
            purpose="eab_hmac",
            plaintext=acme.eab_hmac_key.encode(),
        ).id
    session.add(issuer)
    audit.record(
        session,
        type=EventType.ISSUER_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="issuer",
        subject_id=issuer.id,
        detail={"name": body.name, "kind": "acme", "directory_url": acme.directory_url},
    )
    return issuer


def get_issuer(session: Session, *, project_id: str, issuer_id: str) -> Issuer:
    issuer = session.get(Issuer, issuer_id)
    if issuer is None or issuer.project_id != project_id:
        raise NotFound(f"no issuer {issuer_id!r} in this project")
    return issuer


def list_issuers(session: Session, *, project_id: str) -> list[Issuer]:
    stmt = select(Issuer).where(Issuer.project_id == project_id).order_by(Issuer.name)
    return list(session.scalars(stmt))


def account_key_pem(session: Session, kek: KeyEncryptionKey, issuer: Issuer) -> bytes:
    if issuer.account_key_secret_id is None:
        raise NotFound(f"issuer {issuer.name} has no ACME account key")
    return secrets.reveal_secret(
        session,
        kek,
        issuer.account_key_secret_id,
        owner_table="issuers",
        owner_id=issuer.id,
        purpose="acme_account_key",
    )


def to_out(issuer: Issuer) -> IssuerOut:
    cfg = issuer.config
    acme = None
    if issuer.kind == "acme":
        acme = AcmeIssuerOut(
            directory_url=cfg["directory_url"],
            account_url=cfg.get("account_url"),
            contact_email=cfg.get("contact_email"),
            eab_kid=cfg.get("eab_kid"),
            has_ca_bundle=bool(cfg.get("ca_bundle_pem")),
        )
    return IssuerOut(
        id=issuer.id,
        name=issuer.name,
        kind=issuer.kind,
        status=issuer.status,
        acme=acme,
        adcs=adcs_service.to_out(issuer) if issuer.kind == "adcs" else None,
    )
