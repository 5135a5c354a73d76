"""Issuers. ACME: the account is registered with the CA when the issuer is created;
AD CS: see ``issuers.adcs.service`` (the CA is checked when it is created or edited)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
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
from certautopilot.issuers.adcs.schemas import AdcsIssuerIn
from certautopilot.issuers.interfaces import CertificateAuthority
from certautopilot.issuers.models import Issuer
from certautopilot.issuers.schemas import AcmeIssuerOut, IssuerIn, IssuerOut, IssuerPatch
from certautopilot.netguard import check_url
from certautopilot.plugins import Family, Plugin, registry


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


# -- adding and editing issuers: read, then the CA (no transaction open), then write -------
# The caller owns the transaction and ends it before each ``check_*`` call: those talk to
# the CA, and no database transaction stays open across a network call.


@dataclass(frozen=True)
class IssuerCheck:
    """What the CA said about a new issuer: the registered ACME account, or the verified
    AD CS settings (TLS, credentials, templates)."""

    account: RegisteredAccount | None = None
    adcs: adcs_service.Verified | None = None


def check_new_issuer(body: IssuerIn, *, actor: Actor) -> IssuerCheck:
    """Network I/O, outside any transaction: registers the ACME account or checks AD CS."""
    require(actor, "admin", "Adding an issuer")
    if body.adcs is not None:
        return IssuerCheck(adcs=adcs_service.verify(body.adcs))
    return IssuerCheck(account=register_acme_account(body))


def create_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    body: IssuerIn,
    check: IssuerCheck,
    actor: Actor,
) -> Issuer:
    """Stores the issuer ``check_new_issuer`` vetted, and audits it. The caller commits."""
    require(actor, "admin", "Adding an issuer")
    if body.adcs is not None:
        assert check.adcs is not None
        return adcs_service.create_issuer(
            session,
            kek,
            project_id=project_id,
            name=body.name,
            body=body.adcs,
            verified=check.adcs,
            actor=actor,
        )
    assert check.account is not None
    return create_acme_issuer(
        session, kek, project_id=project_id, body=body, account=check.account, actor=actor
    )


def edited_settings(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    issuer_id: str,
    patch: IssuerPatch,
    actor: Actor,
) -> AdcsIssuerIn:
    """The issuer's settings with ``patch`` applied, to check at the CA before storing."""
    require(actor, "admin", "Editing an issuer")
    issuer = get_issuer(session, project_id=project_id, issuer_id=issuer_id)
    if issuer.kind != "adcs":
        raise Conflict("only AD CS issuers can be edited; add a new ACME issuer instead")
    return adcs_service.merged(session, kek, issuer, patch.adcs)


def check_edited_issuer(settings: AdcsIssuerIn, *, issuer_id: str) -> adcs_service.Verified:
    """Network I/O, outside any transaction: the edited settings, checked at the CA."""
    return adcs_service.verify(settings, issuer_id=issuer_id)


def update_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    issuer_id: str,
    patch: IssuerPatch,
    settings: AdcsIssuerIn,
    verified: adcs_service.Verified,
    actor: Actor,
) -> Issuer:
    """Stores the checked settings and audits the edit. The caller commits."""
    require(actor, "admin", "Editing an issuer")
    issuer = get_issuer(session, project_id=project_id, issuer_id=issuer_id)
    return adcs_service.update_issuer(
        session,
        kek,
        issuer=issuer,
        body=settings,
        verified=verified,
        changed=list(patch.adcs.model_dump(exclude_unset=True)),
        actor=actor,
    )


# -- the issuer port: plugins, connections, capabilities ---------------------------------


def plugin(kind: str) -> Plugin:
    """The installed issuer plugin of ``kind`` (a 422 on ``kind`` when there is none)."""
    return registry().get(Family.ISSUERS, kind)


def capabilities(kind: str) -> frozenset[str]:
    """What issuers of ``kind`` can do (``issuers.interfaces`` names the flags)."""
    return plugin(kind).capabilities


def has(issuer: Issuer, capability: str) -> bool:
    return capability in capabilities(issuer.kind)


def kinds_with(capability: str) -> list[str]:
    """The installed issuer kinds that state ``capability`` (for queries)."""
    return [n for n, p in registry().family(Family.ISSUERS).items() if capability in p.capabilities]


def fingerprint(issuer: Issuer) -> str:
    """Changes whenever the issuer is edited: its settings or any of its secrets (a new
    secret row replaces an edited one). Keys the worker's cache of connected clients."""
    data = {
        "kind": issuer.kind,
        "config": issuer.config,
        "account_key": issuer.account_key_secret_id,
        "eab": issuer.eab_hmac_secret_id,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def connect(session: Session, kek: KeyEncryptionKey, issuer: Issuer) -> CertificateAuthority:
    """A client of the issuer's CA through its plugin (secrets in worker memory only)."""
    connected: CertificateAuthority = plugin(issuer.kind).cls.connect(session, kek, issuer)
    return connected
