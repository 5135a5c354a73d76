"""Issuers. ACME: the account is registered with the CA when the issuer is created;
AD CS: see ``issuers.adcs.service`` (the CA is checked when it is created or edited)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Select, or_, select
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
from certautopilot.issuers.acme.eab_refusal import eab_fields
from certautopilot.issuers.acme.keys import generate_account_key
from certautopilot.issuers.adcs import service as adcs_service
from certautopilot.issuers.adcs.schemas import AdcsIssuerIn
from certautopilot.issuers.interfaces import CertificateAuthority
from certautopilot.issuers.models import Issuer, IssuerStatus
from certautopilot.issuers.schemas import (
    AcmeIssuerOut,
    AcmeIssuerPatch,
    IssuerIn,
    IssuerOut,
    IssuerPatch,
)
from certautopilot.netguard import REFUSED_PROBLEM, check_url
from certautopilot.plugins import Family, Plugin, registry
from certautopilot.renewal import issuer_limits
from certautopilot.renewal.budget import Limits


@dataclass(frozen=True)
class RegisteredAccount:
    issuer_id: str
    account_url: str
    account_key_pem: bytes
    #: The directory's ``meta.caaIdentities`` (RFC 8555 §7.1.1), as the CA sent them.
    caa_identities: tuple[str, ...] = ()


#: CAA identities of well-known ACME CAs whose directory may not list them.
KNOWN_CAA_IDENTITIES = (
    ("api.letsencrypt.org", "letsencrypt.org"),
    ("acme.zerossl.com", "sectigo.com"),
    (".pki.goog", "pki.goog"),
)


def derived_caa_identity(directory_url: str, caa_identities: tuple[str, ...] = ()) -> str | None:
    """The CAA issuer domain name (RFC 8659) an ACME issuer has when none was set: the
    first of the directory's ``meta.caaIdentities``, else the known CA of the URL."""
    if caa_identities:
        return caa_identities[0].lower()
    url = directory_url.lower()
    return next((ident for host, ident in KNOWN_CAA_IDENTITIES if host in url), None)


def caa_identity(issuer: Issuer) -> str | None:
    """The issuer's CAA identity: the one set on it, else the derived one (None: unknown)."""
    cfg = issuer.config
    if issuer.kind != "acme":
        return cfg.get("caa_identity")
    return cfg.get("caa_identity") or derived_caa_identity(
        str(cfg.get("directory_url", "")), tuple(cfg.get("caa_identities") or ())
    )


def rate_limits(issuer: Issuer, default: Limits) -> issuer_limits.IssuerLimits:
    """The rate limits in force for ``issuer`` (``default``: the service settings)."""
    return issuer_limits.resolve(issuer.config.get("rate_limits"), default=default)


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
        if exc.problem_type == REFUSED_PROBLEM:
            # The directory redirected, or listed a URL, to an address the guard refuses.
            raise InvalidInput.field("acme.directory_url", str(exc)) from exc
        message = f"the CA refused the account: {exc}"
        fields = eab_fields(exc.problem_type, str(exc), eab_sent=bool(acme.eab_kid))
        if not fields:
            raise InvalidInput.field("acme", message) from exc
        raise InvalidInput(message, [(f, message) for f in fields]) from exc
    return RegisteredAccount(
        issuer_id=new_id(),
        account_url=url,
        account_key_pem=pem,
        caa_identities=_directory_caa_identities(acme.directory_url, acme.ca_bundle_pem),
    )


def _directory_caa_identities(directory_url: str, ca_bundle_pem: str | None) -> tuple[str, ...]:
    """``meta.caaIdentities`` of the (cached) directory; none when it cannot be read."""
    from certautopilot.issuers.acme import info

    try:
        meta = info.directory(directory_url, ca_bundle_pem).get("meta") or {}
    except IssuerError:
        return ()
    found = meta.get("caaIdentities") if isinstance(meta, dict) else None
    return tuple(str(i) for i in found) if isinstance(found, list) else ()


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
            "caa_identities": list(account.caa_identities),
            "caa_identity": acme.caa_identity,
            "rate_limits": acme.rate_limits.stored() if acme.rate_limits else None,
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
    # The ``external`` issuer holds imported certificates (``certificates.imports``); nobody
    # orders from it, so it is never listed.
    stmt = (
        select(Issuer)
        .where(Issuer.project_id == project_id, Issuer.kind != "external")
        .order_by(Issuer.name)
    )
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


def to_out(issuer: Issuer, *, default_limits: Limits | None = None) -> IssuerOut:
    """The issuer as the API shows it; ``default_limits`` are the service settings (the
    limits of an issuer that names none)."""
    cfg = issuer.config
    acme = None
    if issuer.kind == "acme":
        limits = rate_limits(issuer, default_limits or Limits())
        stored_limits = cfg.get("rate_limits") or {}
        acme = AcmeIssuerOut(
            directory_url=cfg["directory_url"],
            account_url=cfg.get("account_url"),
            contact_email=cfg.get("contact_email"),
            eab_kid=cfg.get("eab_kid"),
            has_ca_bundle=bool(cfg.get("ca_bundle_pem")),
            rate_limits=issuer_limits.describe(limits),
            rate_limits_preset=stored_limits.get("preset"),
            caa_identity=caa_identity(issuer),
            caa_identity_derived=not cfg.get("caa_identity"),
        )
    return IssuerOut(
        id=issuer.id,
        name=issuer.name,
        kind=issuer.kind,
        status=issuer.status,
        enabled=issuer.status != IssuerStatus.DISABLED,
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
    if issuer.kind != "adcs" or patch.adcs is None:
        raise Conflict(
            f"a {issuer.kind} issuer takes an '{issuer.kind}' edit"
            + ("; add a new ACME issuer for another CA or account" if issuer.kind == "acme" else "")
        )
    return adcs_service.merged(session, kek, issuer, patch.adcs)


def update_acme_issuer(
    session: Session, *, project_id: str, issuer_id: str, patch: AcmeIssuerPatch, actor: Actor
) -> Issuer:
    """Stores an ACME issuer's new limits or CAA identity (nothing to check at the CA: the
    account stays as it is) and audits which fields changed. The caller commits."""
    require(actor, "admin", "Editing an issuer")
    issuer = get_issuer(session, project_id=project_id, issuer_id=issuer_id)
    if issuer.kind != "acme":
        raise Conflict(f"a {issuer.kind} issuer takes an '{issuer.kind}' edit")
    given = patch.model_fields_set
    config = dict(issuer.config)
    if "rate_limits" in given:
        config["rate_limits"] = patch.rate_limits.stored() if patch.rate_limits else None
    if "caa_identity" in given:
        config["caa_identity"] = patch.caa_identity
    issuer.config = config
    audit.record(
        session,
        type=EventType.ISSUER_UPDATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="issuer",
        subject_id=issuer.id,
        detail={
            "kind": "acme",
            "changed": sorted(given),
            "rate_limits": config.get("rate_limits"),
            "caa_identity": config.get("caa_identity"),
        },
    )
    return issuer


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
        changed=list(patch.adcs.model_dump(exclude_unset=True)) if patch.adcs else [],
        actor=actor,
    )


# -- disabling and deleting --------------------------------------------------------------


def disabled_ids() -> Select[str]:
    """The disabled issuers' ids, as a subquery (the scheduler leaves their certificates
    out of renewals and in the expiry warnings)."""
    return select(Issuer.id).where(Issuer.status == IssuerStatus.DISABLED)


def require_enabled(issuer: Issuer, *, field: str | None = None) -> None:
    """A 422 on ``field`` (a 409 without one) when ``issuer`` is disabled."""
    if issuer.status != IssuerStatus.DISABLED:
        return
    message = (
        f"issuer {issuer.name!r} is disabled: an admin can enable it again in "
        "Settings → Issuers; or choose another issuer"
    )
    if field is not None:
        raise InvalidInput.field(field, message)
    raise Conflict(message)


def set_enabled(
    session: Session, *, project_id: str, issuer_id: str, enabled: bool, actor: Actor
) -> Issuer:
    """Disables (no new orders) or enables the issuer, audited. The caller commits."""
    require(actor, "admin", "Disabling or enabling an issuer")
    issuer = get_issuer(session, project_id=project_id, issuer_id=issuer_id)
    wanted = IssuerStatus.ACTIVE if enabled else IssuerStatus.DISABLED
    if issuer.status == wanted:
        return issuer
    issuer.status = wanted
    audit.record(
        session,
        type=EventType.ISSUER_UPDATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="issuer",
        subject_id=issuer.id,
        detail={"kind": issuer.kind, "changed": ["enabled"], "enabled": enabled},
    )
    return issuer


def certificates_using(session: Session, issuer: Issuer) -> list[tuple[str, str]]:
    """(id, common name) of the certificates that order from ``issuer``: as their own
    issuer, as one of their fallbacks, or for a version a fallback took."""
    from certautopilot.certificates.models import Certificate, CertificateVersion

    took = set(
        session.scalars(
            select(CertificateVersion.certificate_id).where(
                CertificateVersion.issuer_id == issuer.id
            )
        )
    )
    rows = session.execute(
        select(
            Certificate.id,
            Certificate.common_name,
            Certificate.issuer_id,
            Certificate.fallback_issuer_ids,
        )
        .where(
            Certificate.project_id == issuer.project_id,
            or_(
                Certificate.issuer_id == issuer.id,
                Certificate.id.in_(took),
                Certificate.fallback_issuer_ids.is_not(None),
            ),
        )
        .order_by(Certificate.common_name, Certificate.id)
    ).all()
    return [
        (cert_id, cn)
        for cert_id, cn, own, fallbacks in rows
        if own == issuer.id or cert_id in took or issuer.id in (fallbacks or [])
    ]


def delete_issuer(session: Session, *, project_id: str, issuer_id: str, actor: Actor) -> None:
    """Deletes an issuer no certificate and no policy uses (409 naming them otherwise),
    with its secrets (the ACME account key, EAB, AD CS credentials). The ACME account
    stays at the CA. The caller commits."""
    from certautopilot.crypto.models import StoredSecret
    from certautopilot.policy import service as policy

    require(actor, "admin", "Deleting an issuer")
    issuer = get_issuer(session, project_id=project_id, issuer_id=issuer_id)
    users = certificates_using(session, issuer)
    if users:
        shown = ", ".join(f"{cert_id} ({cn})" for cert_id, cn in users[:20])
        more = f" and {len(users) - 20} more" if len(users) > 20 else ""
        raise Conflict(
            f"issuer {issuer.name} is still used by {len(users)} certificate(s): {shown}{more}; "
            "delete them or disable the issuer instead (no new orders, certificates kept)"
        )
    listed = policy.rules_of(session, project_id).fallback_issuers or []
    if issuer.id in listed or issuer.name in listed:
        raise Conflict(
            f"the project policy lists issuer {issuer.name} in fallback_issuers: "
            "take it out of the policy first"
        )
    owned = select(StoredSecret).where(
        StoredSecret.owner_table == "issuers", StoredSecret.owner_id == issuer.id
    )
    for row in session.scalars(owned):
        secrets.delete_secret(
            session, row.id, owner_table="issuers", owner_id=issuer.id, purpose=row.purpose
        )
    audit.record(
        session,
        type=EventType.ISSUER_DELETED,
        actor=actor.email,
        project_id=project_id,
        subject_type="issuer",
        subject_id=issuer.id,
        detail={"name": issuer.name, "kind": issuer.kind},
    )
    session.delete(issuer)


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
        # what the CA taught about its limits (``learned_limits``) is no edit of the issuer
        "config": {k: v for k, v in (issuer.config or {}).items() if k != "learned_limits"},
        "account_key": issuer.account_key_secret_id,
        "eab": issuer.eab_hmac_secret_id,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def connect(session: Session, kek: KeyEncryptionKey, issuer: Issuer) -> CertificateAuthority:
    """A client of the issuer's CA through its plugin (secrets in worker memory only)."""
    connected: CertificateAuthority = plugin(issuer.kind).cls.connect(session, kek, issuer)
    return connected
