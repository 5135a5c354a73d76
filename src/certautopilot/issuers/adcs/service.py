"""AD CS issuers: checked against the CA when created or edited; credentials encrypted.

``verify`` does the network I/O (outside any transaction): TLS with the given CA bundle,
the credentials, that the URL is Web Enrollment, and that the CA offers every template.
Each failure becomes an ``InvalidInput`` on the field to fix, with the CA's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.errors import Conflict, InvalidInput, IssuerError
from certautopilot.issuers.adcs import client as adcs_client
from certautopilot.issuers.adcs.client import AdcsClient, AdcsSettings
from certautopilot.issuers.adcs.models import AdcsProfile
from certautopilot.issuers.adcs.schemas import AdcsIssuerIn, AdcsIssuerOut, AdcsIssuerPatch
from certautopilot.issuers.models import Issuer
from certautopilot.netguard import check_url

PASSWORD = "adcs_password"
CLIENT_KEY = "adcs_client_key"

_FIELD_OF = {
    adcs_client.PT_TLS: "adcs.ca_bundle_pem",
    adcs_client.PT_UNAUTHORIZED: "adcs.password",
    adcs_client.PT_FORBIDDEN: "adcs.auth",
    adcs_client.PT_KERBEROS: "adcs.auth",
    adcs_client.PT_UNREACHABLE: "adcs.url",
    adcs_client.PT_REFUSED: "adcs.url",
    adcs_client.PT_UNEXPECTED: "adcs.url",
}


@dataclass(frozen=True)
class Verified:
    issuer_id: str
    templates_checked: bool


def _settings(body: AdcsIssuerIn) -> AdcsSettings:
    return AdcsSettings(
        url=body.url,
        auth=body.auth,
        username=body.username,
        password=body.password,
        client_cert_pem=body.client_cert_pem,
        client_key_pem=body.client_key_pem,
        ca_bundle_pem=body.ca_bundle_pem,
    )


def verify(body: AdcsIssuerIn, *, issuer_id: str | None = None) -> Verified:
    """Network I/O, outside any transaction. Raises InvalidInput saying what failed."""
    check_url(body.url, field="adcs.url")
    if body.client_cert_pem:
        _client_cert(body.client_cert_pem)
    try:
        client = AdcsClient(_settings(body))
        with client.session() as session:
            session.home()
            offered = session.templates()
    except IssuerError as exc:
        field = _FIELD_OF.get(exc.problem_type or "", "adcs")
        if field == "adcs.password" and body.auth == "client_cert":
            field = "adcs.client_cert_pem"
        what = {
            adcs_client.PT_TLS: "TLS failed",
            adcs_client.PT_UNAUTHORIZED: "the CA refused the credentials",
            adcs_client.PT_FORBIDDEN: "the CA refused access",
            adcs_client.PT_UNREACHABLE: "the CA cannot be reached",
            adcs_client.PT_REFUSED: "the CA may not be reached",
            adcs_client.PT_KERBEROS: "Kerberos is not available",
        }.get(exc.problem_type or "", "the CA check failed")
        raise InvalidInput.field(field, f"{what}: {exc}") from exc
    if offered is not None:
        known = {t.lower() for t in offered}
        missing = [t for t in body.templates if t.lower() not in known]
        if missing:
            raise InvalidInput.field(
                "adcs.templates",
                f"unknown template {', '.join(repr(t) for t in missing)}: the CA offers "
                f"{', '.join(offered)} to this account",
            )
    return Verified(issuer_id or new_id(), offered is not None)


def _client_cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidInput.field("adcs.client_cert_pem", "is not a PEM certificate") from exc


def _client_key_ok(cert_pem: str, key_pem: str) -> None:
    cert = _client_cert(cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput.field(
            "adcs.client_key_pem", "is not an unencrypted PEM private key"
        ) from exc
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise InvalidInput.field("adcs.client_key_pem", "does not match client_cert_pem")


def _config(body: AdcsIssuerIn, verified: Verified) -> dict[str, Any]:
    return {
        "url": body.url,
        "templates": body.templates,
        "auth": body.auth,
        "username": body.username,
        "client_cert_pem": body.client_cert_pem,
        "ca_bundle_pem": body.ca_bundle_pem,
        "check_interval_seconds": body.check_interval_seconds,
        "approval_timeout_seconds": body.approval_timeout_seconds,
        "templates_checked": verified.templates_checked,
    }


def _store_credentials(
    session: Session, kek: KeyEncryptionKey, issuer: Issuer, body: AdcsIssuerIn
) -> None:
    """Each credential under a fresh DEK; the one it replaces (on an edit) is deleted."""
    config = dict(issuer.config)
    for purpose, value, key in (
        (PASSWORD, body.password, "password_secret_id"),
        (CLIENT_KEY, body.client_key_pem, "client_key_secret_id"),
    ):
        if config.get(key):
            secrets.delete_secret(
                session, config[key], owner_table="issuers", owner_id=issuer.id, purpose=purpose
            )
        config[key] = (
            secrets.store_secret(
                session,
                kek,
                owner_table="issuers",
                owner_id=issuer.id,
                purpose=purpose,
                plaintext=value.encode(),
            ).id
            if value
            else None
        )
    issuer.config = config


def create_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    name: str,
    body: AdcsIssuerIn,
    verified: Verified,
    actor: Actor,
) -> Issuer:
    if session.scalar(
        select(Issuer.id).where(Issuer.project_id == project_id, Issuer.name == name)
    ):
        raise Conflict(f"an issuer named {name!r} exists in this project")
    if body.client_cert_pem and body.client_key_pem:
        _client_key_ok(body.client_cert_pem, body.client_key_pem)
    issuer = Issuer(
        id=verified.issuer_id,
        project_id=project_id,
        name=name,
        kind="adcs",
        config=_config(body, verified),
    )
    _store_credentials(session, kek, issuer, body)
    session.add(issuer)
    audit.record(
        session,
        type=EventType.ISSUER_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="issuer",
        subject_id=issuer.id,
        detail={
            "name": name,
            "kind": "adcs",
            "url": body.url,
            "templates": body.templates,
            "auth": body.auth,
        },
    )
    return issuer


def merged(
    session: Session, kek: KeyEncryptionKey, issuer: Issuer, patch: AdcsIssuerPatch
) -> AdcsIssuerIn:
    """The issuer's settings with ``patch`` applied; kept credentials are revealed for the check."""
    cfg = issuer.config
    given = patch.model_dump(exclude_unset=True)
    auth = given.get("auth", cfg["auth"])
    same_auth = auth == cfg["auth"]
    password = given.get("password")
    if password is None and same_auth and "username" not in given:
        password = _reveal(session, kek, issuer, PASSWORD, "password_secret_id")
    key = given.get("client_key_pem")
    if key is None and same_auth and "client_cert_pem" not in given:
        key = _reveal(session, kek, issuer, CLIENT_KEY, "client_key_secret_id")
    data = {
        "url": cfg["url"],
        "templates": cfg["templates"],
        "auth": cfg["auth"],
        "username": cfg.get("username"),
        "client_cert_pem": cfg.get("client_cert_pem"),
        "ca_bundle_pem": cfg.get("ca_bundle_pem"),
        "check_interval_seconds": cfg["check_interval_seconds"],
        "approval_timeout_seconds": cfg["approval_timeout_seconds"],
        **given,
        "password": password,
        "client_key_pem": key,
    }
    if auth != "client_cert":
        data["client_cert_pem"] = data["client_key_pem"] = None
    else:
        data["username"] = data["password"] = None
    try:
        return AdcsIssuerIn.model_validate(data)
    except ValueError as exc:
        raise InvalidInput(f"adcs: {exc}", [("adcs", str(exc))]) from exc


def update_issuer(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    issuer: Issuer,
    body: AdcsIssuerIn,
    verified: Verified,
    changed: list[str],
    actor: Actor,
) -> Issuer:
    if body.client_cert_pem and body.client_key_pem:
        _client_key_ok(body.client_cert_pem, body.client_key_pem)
    issuer.config = {**issuer.config, **_config(body, verified)}
    _store_credentials(session, kek, issuer, body)
    audit.record(
        session,
        type=EventType.ISSUER_UPDATED,
        actor=actor.email,
        project_id=issuer.project_id,
        subject_type="issuer",
        subject_id=issuer.id,
        detail={"kind": "adcs", "changed": sorted(changed)},
    )
    return issuer


def _reveal(
    session: Session, kek: KeyEncryptionKey, issuer: Issuer, purpose: str, key: str
) -> str | None:
    secret_id = issuer.config.get(key)
    if not secret_id:
        return None
    return secrets.reveal_secret(
        session, kek, secret_id, owner_table="issuers", owner_id=issuer.id, purpose=purpose
    ).decode()


def settings_for(session: Session, kek: KeyEncryptionKey, issuer: Issuer) -> AdcsSettings:
    """The issuer's connection settings with its credentials (worker memory only)."""
    cfg = issuer.config
    return AdcsSettings(
        url=cfg["url"],
        auth=cfg["auth"],
        username=cfg.get("username"),
        password=_reveal(session, kek, issuer, PASSWORD, "password_secret_id"),
        client_cert_pem=cfg.get("client_cert_pem"),
        client_key_pem=_reveal(session, kek, issuer, CLIENT_KEY, "client_key_secret_id"),
        ca_bundle_pem=cfg.get("ca_bundle_pem"),
    )


def to_out(issuer: Issuer) -> AdcsIssuerOut:
    cfg = issuer.config
    subject = None
    if cfg.get("client_cert_pem"):
        subject = _client_cert(cfg["client_cert_pem"]).subject.rfc4514_string()
    return AdcsIssuerOut(
        url=cfg["url"],
        templates=list(cfg["templates"]),
        auth=cfg["auth"],
        username=cfg.get("username"),
        has_password=bool(cfg.get("password_secret_id")),
        client_cert_subject=subject,
        has_ca_bundle=bool(cfg.get("ca_bundle_pem")),
        check_interval_seconds=int(cfg["check_interval_seconds"]),
        approval_timeout_seconds=int(cfg["approval_timeout_seconds"]),
        templates_checked=bool(cfg.get("templates_checked")),
    )


# -- certificates on an AD CS issuer -----------------------------------------------------


def resolve_template(issuer: Issuer, requested: str | None) -> str:
    """The issuer's spelling of ``requested`` (default: its first template)."""
    templates: list[str] = list(issuer.config["templates"])
    if requested is None:
        return templates[0]
    for template in templates:
        if template.lower() == requested.strip().lower():
            return template
    raise InvalidInput.field(
        "adcs_template",
        f"{requested!r} is not a template of issuer {issuer.name}: {', '.join(templates)}",
    )


def attach_profile(session: Session, *, certificate_id: str, template: str) -> None:
    session.add(AdcsProfile(certificate_id=certificate_id, template=template))


def template_of(session: Session, certificate_id: str) -> str | None:
    profile = session.get(AdcsProfile, certificate_id)
    return profile.template if profile else None
