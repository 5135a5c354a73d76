"""Distribution targets of a project, their attachment to certificates, and deployments.

Every function takes the caller's session and never commits. Credentials are stored with
``crypto.service.store_secret`` as one JSON document per target and decrypted only by
:func:`load_settings`, in the worker step (or the dry run) that uses them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.audit import service as audit
from certautopilot.audit.events import EventType
from certautopilot.auth.service import Actor, require
from certautopilot.certificates import material
from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.certificates.states import CertStatus
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.db.base import new_id
from certautopilot.distribution import probe, states
from certautopilot.distribution import targets as plugins
from certautopilot.distribution.check import verify_served
from certautopilot.distribution.guard import check_remote_host
from certautopilot.distribution.interfaces import (
    Check,
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
)
from certautopilot.distribution.models import CertificateTarget, Deployment, DistributionTarget
from certautopilot.distribution.schemas import (
    DeploymentOut,
    DeploymentsOut,
    DeployOut,
    DryRunItem,
    PostDeployCheck,
    RetryPolicy,
    TargetDeployments,
    TargetIn,
    TargetOut,
    TargetPatch,
    TargetRef,
    TargetTestOut,
    TargetTestStep,
    field_of,
)
from certautopilot.distribution.states import DeployStatus
from certautopilot.errors import Conflict, InvalidInput, NotFound
from certautopilot.plugins import secret_fields

OWNER_TABLE = "distribution_targets"
PURPOSE = "target_credentials"
FINAL = states.FINAL
BYO_CSR_REFUSAL = (
    "a certificate from your own CSR is never distributed: the service does not have its "
    "private key to deploy; download it instead"
)
DRY_RUN_TIMEOUT = 60.0


class DeploymentLauncher(Protocol):
    """Starts the durable deployment of one row in the caller's transaction."""

    def __call__(self, session: Session, deployment_id: str, workflow_id: str) -> None: ...


@dataclass(frozen=True)
class Settings:
    """A target's settings with its credentials: in memory only, never stored or logged."""

    kind: str
    config: BaseModel
    check: PostDeployCheck | None
    retry: RetryPolicy

    def __repr__(self) -> str:
        return f"Settings(kind={self.kind!r})"


# -- targets -----------------------------------------------------------------------------


def parse_config(kind: str, raw: dict[str, Any] | None, field: str) -> BaseModel:
    if raw is None:
        raise InvalidInput.field(field, f"is required when kind is {kind}")
    if not isinstance(raw, dict):
        raise InvalidInput.field(field, "must be an object of settings")
    try:
        return plugins.plugin(kind).config_model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            (
                ".".join([field, *(str(p) for p in e["loc"])]),
                e["msg"].removeprefix("Value error, "),
            )
            for e in exc.errors(include_url=False, include_input=False)
        ]
        errors = list(dict.fromkeys(errors))  # a union's branches can repeat one error
        raise InvalidInput("; ".join(f"{f}: {m}" for f, m in errors), errors) from None


def _validated(
    kind: str, raw: dict[str, Any] | None, field: str, check: PostDeployCheck | None
) -> BaseModel:
    """The same checks on create and on edit: the kind's schema, the plugin's own rules
    (SSRF guard on hosts and URLs, allowed local paths, keys that parse), the check host."""
    config = parse_config(kind, raw, field)
    plugins.validate(kind, config, field)
    if check is not None:
        check_remote_host(check.host, field="post_deploy_check.host")
    return config


def _split(config: BaseModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings stored in the clear, credentials stored encrypted: the fields the
    plugin's model declares with ``secret_field``)."""
    names = secret_fields(type(config))
    public = config.model_dump(mode="json", exclude=set(names))
    hidden = {k: v for k in names if (v := getattr(config, k)) is not None}
    return public, hidden


def _store_credentials(
    session: Session, kek: KeyEncryptionKey, target: DistributionTarget, hidden: dict[str, Any]
) -> None:
    """Encrypts ``hidden`` under a fresh DEK and removes the previous ciphertext."""
    old = target.credentials_secret_id
    target.credentials_secret_id = None
    if hidden:
        target.credentials_secret_id = secrets.store_secret(
            session,
            kek,
            owner_table=OWNER_TABLE,
            owner_id=target.id,
            purpose=PURPOSE,
            plaintext=json.dumps(hidden).encode(),
        ).id
    if old is not None:
        secrets.delete_secret(
            session, old, owner_table=OWNER_TABLE, owner_id=target.id, purpose=PURPOSE
        )


def _name_free(session: Session, project_id: str, name: str, target_id: str | None) -> None:
    found = session.scalar(
        select(DistributionTarget.id).where(
            DistributionTarget.project_id == project_id, DistributionTarget.name == name
        )
    )
    if found is not None and found != target_id:
        raise Conflict(f"a target named {name!r} exists in this project already")


def _no_stray_blocks(blocks: dict[str, Any], field: str, *, given: Any) -> None:
    """Only the kind's own block: another kind's is 'only applies', anything else unknown."""
    by_field = {field_of(k): k for k in plugins.kinds()}
    for key, value in blocks.items():
        if key == field:
            continue
        if key in by_field:
            if not given(value):
                continue
            raise InvalidInput.field(key, f"only applies when kind is {by_field[key]}")
        raise InvalidInput.field(key, "Extra inputs are not permitted")


def create_target(
    session: Session, kek: KeyEncryptionKey, *, project_id: str, body: TargetIn, actor: Actor
) -> DistributionTarget:
    require(actor, "admin", "Adding a distribution target")
    plugins.plugin(body.kind)
    field = field_of(body.kind)
    blocks = body.blocks()
    _no_stray_blocks(blocks, field, given=lambda v: bool(v))
    config = _validated(body.kind, blocks.get(field), field, body.post_deploy_check)
    _name_free(session, project_id, body.name, None)
    public, hidden = _split(config)
    target = DistributionTarget(
        id=new_id(),
        project_id=project_id,
        name=body.name,
        kind=body.kind,
        config={
            "settings": public,
            "post_deploy_check": body.post_deploy_check.model_dump(mode="json")
            if body.post_deploy_check
            else None,
            "retry": body.retry.model_dump(mode="json"),
            "credentials": sorted(hidden),
        },
        created_by=actor.user_id,
    )
    _store_credentials(session, kek, target, hidden)
    session.add(target)
    audit.record(
        session,
        type=EventType.TARGET_CREATED,
        actor=actor.email,
        project_id=project_id,
        subject_type="target",
        subject_id=target.id,
        detail={"name": body.name, "kind": body.kind},
    )
    return target


def update_target(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    target: DistributionTarget,
    body: TargetPatch,
    actor: Actor,
) -> list[str]:
    """Applies ``body`` with the same validation as create; returns the names of the changed
    fields (``webhook.secret``, ``retry``...), as audited in ``target.updated`` - never
    their values. Changed credentials are encrypted under a fresh DEK and the old
    ciphertext is deleted; unchanged ones are left as they are."""
    require(actor, "admin", "Editing a distribution target")
    given = body.model_dump(exclude_unset=True)
    if given.get("kind") not in (None, target.kind):
        raise InvalidInput.field(
            "kind", f"cannot change (the target is {target.kind}); add a new target instead"
        )
    field = field_of(target.kind)
    _no_stray_blocks(body.blocks(), field, given=lambda v: True)
    before = load_settings(session, kek, target)
    current = before.config.model_dump(mode="json")
    patch = given.get(field)
    if field in given and not isinstance(patch, dict):
        raise InvalidInput.field(field, "must be an object of settings to change")
    check = (
        body.post_deploy_check if "post_deploy_check" in given else before.check
    )  # given as null: the check is removed
    config = _validated(target.kind, {**current, **(patch or {})}, field, check)
    after = config.model_dump(mode="json")
    changed = sorted(
        f"{field}.{k}" for k in after.keys() | current.keys() if after.get(k) != current.get(k)
    )
    retry = body.retry if body.retry is not None else before.retry
    if retry != before.retry:
        changed.append("retry")
    if check != before.check:
        changed.append("post_deploy_check")
    if body.enabled is not None and body.enabled != target.enabled:
        changed.append("enabled")
        target.enabled = body.enabled
    if body.name is not None and body.name != target.name:
        _name_free(session, target.project_id, body.name, target.id)
        changed.append("name")
        target.name = body.name
    public, hidden = _split(config)
    _, old_hidden = _split(before.config)
    if hidden != old_hidden:
        _store_credentials(session, kek, target, hidden)
    target.config = {
        "settings": public,
        "post_deploy_check": check.model_dump(mode="json") if check else None,
        "retry": retry.model_dump(mode="json"),
        "credentials": sorted(hidden),
    }
    audit.record(
        session,
        type=EventType.TARGET_UPDATED,
        actor=actor.email,
        project_id=target.project_id,
        subject_type="target",
        subject_id=target.id,
        detail={"name": target.name, "kind": target.kind, "changed": sorted(changed)},
    )
    return sorted(changed)


def list_targets(session: Session, *, project_id: str) -> list[DistributionTarget]:
    stmt = (
        select(DistributionTarget)
        .where(DistributionTarget.project_id == project_id)
        .order_by(DistributionTarget.name)
    )
    return list(session.scalars(stmt))


def attached_counts(session: Session, *, project_id: str) -> dict[str, int]:
    """How many certificates each of the project's targets is attached to (unused: absent)."""
    stmt = (
        select(CertificateTarget.target_id, func.count())
        .join(DistributionTarget, DistributionTarget.id == CertificateTarget.target_id)
        .where(DistributionTarget.project_id == project_id)
        .group_by(CertificateTarget.target_id)
    )
    return {target_id: int(n) for target_id, n in session.execute(stmt)}


def get_target(session: Session, *, project_id: str, target_id: str) -> DistributionTarget:
    target = session.get(DistributionTarget, target_id)
    if target is None or target.project_id != project_id:
        raise NotFound(f"no distribution target {target_id!r} in this project")
    return target


def certificates_attached(session: Session, target: DistributionTarget) -> list[tuple[str, str]]:
    """(id, common name) of the certificates ``target`` is attached to."""
    rows = session.execute(
        select(Certificate.id, Certificate.common_name)
        .join(CertificateTarget, CertificateTarget.certificate_id == Certificate.id)
        .where(CertificateTarget.target_id == target.id)
        .order_by(Certificate.common_name, Certificate.id)
    ).all()
    return [(cert_id, cn) for cert_id, cn in rows]


def delete_target(session: Session, *, target: DistributionTarget, actor: Actor) -> None:
    """Deletes a target no certificate is attached to (409 naming them otherwise), with its
    credentials and its deployment history. The caller commits."""
    require(actor, "admin", "Removing a distribution target")
    users = certificates_attached(session, target)
    if users:
        shown = ", ".join(f"{cert_id} ({cn})" for cert_id, cn in users[:20])
        more = f" and {len(users) - 20} more" if len(users) > 20 else ""
        raise Conflict(
            f"target {target.name} is attached to {len(users)} certificate(s): {shown}{more}; "
            "detach it from them first, or disable the target instead (nothing is deployed "
            "to it, settings kept)"
        )
    for dep in session.scalars(select(Deployment).where(Deployment.target_id == target.id)):
        session.delete(dep)
    audit.record(
        session,
        type=EventType.TARGET_DELETED,
        actor=actor.email,
        project_id=target.project_id,
        subject_type="target",
        subject_id=target.id,
        detail={"name": target.name, "kind": target.kind},
    )
    session.delete(target)


def to_out(target: DistributionTarget) -> TargetOut:
    cfg = target.config
    check = cfg.get("post_deploy_check")
    return TargetOut(
        id=target.id,
        name=target.name,
        kind=target.kind,
        config=dict(cfg.get("settings", {})),
        credentials=list(cfg.get("credentials", [])),
        post_deploy_check=PostDeployCheck.model_validate(check) if check else None,
        retry=RetryPolicy.model_validate(cfg.get("retry") or {}),
        enabled=target.enabled,
        created_at=target.created_at,
        updated_at=target.updated_at,
    )


def ref(target: DistributionTarget) -> TargetRef:
    return TargetRef(id=target.id, name=target.name, kind=target.kind, enabled=target.enabled)


def load_settings(session: Session, kek: KeyEncryptionKey, target: DistributionTarget) -> Settings:
    """The target's settings with its credentials decrypted, in memory only."""
    hidden: dict[str, Any] = {}
    if target.credentials_secret_id:
        hidden = json.loads(
            secrets.reveal_secret(
                session,
                kek,
                target.credentials_secret_id,
                owner_table=OWNER_TABLE,
                owner_id=target.id,
                purpose=PURPOSE,
            )
        )
    cfg = target.config
    model = plugins.plugin(target.kind).config_model
    config = model.model_validate({**cfg.get("settings", {}), **hidden})
    check = cfg.get("post_deploy_check")
    return Settings(
        kind=target.kind,
        config=config,
        check=PostDeployCheck.model_validate(check) if check else None,
        retry=RetryPolicy.model_validate(cfg.get("retry") or {}),
    )


# -- attachment --------------------------------------------------------------------------


def check_target_ids(
    session: Session, *, project_id: str, ids: Sequence[str], field: str = "distribution_targets"
) -> list[DistributionTarget]:
    """The project's targets with these ids, in order; 422 naming ``field`` otherwise."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = {
        t.id: t
        for t in session.scalars(
            select(DistributionTarget).where(
                DistributionTarget.id.in_(wanted), DistributionTarget.project_id == project_id
            )
        )
    }
    missing = [i for i in wanted if i not in found]
    if missing:
        errors = [
            (f"{field}[{list(ids).index(i)}]", f"no distribution target {i!r} in this project")
            for i in missing
        ]
        raise InvalidInput("; ".join(m for _, m in errors), errors)
    return [found[i] for i in wanted]


def attach(session: Session, *, cert: Certificate, targets: Sequence[DistributionTarget]) -> None:
    if targets and cert.csr_provided:
        raise InvalidInput.field("distribution_targets", BYO_CSR_REFUSAL)
    have = set(
        session.scalars(
            select(CertificateTarget.target_id).where(CertificateTarget.certificate_id == cert.id)
        )
    )
    for t in targets:
        if t.id not in have:
            session.add(CertificateTarget(certificate_id=cert.id, target_id=t.id, state={}))


def set_targets(
    session: Session,
    *,
    cert: Certificate,
    target_ids: Sequence[str],
    actor: Actor,
) -> list[DistributionTarget]:
    """Replaces the certificate's targets (the ACM ARN etc. of kept ones stay)."""
    require(actor, "operator", "Changing a certificate's distribution targets")
    targets = check_target_ids(session, project_id=cert.project_id, ids=target_ids, field="targets")
    if targets and cert.csr_provided:
        raise InvalidInput.field("targets", BYO_CSR_REFUSAL)
    keep = {t.id for t in targets}
    for link in session.scalars(
        select(CertificateTarget).where(CertificateTarget.certificate_id == cert.id)
    ):
        if link.target_id not in keep:
            session.delete(link)
    session.flush()
    attach(session, cert=cert, targets=targets)
    audit.record(
        session,
        type=EventType.CERT_TARGETS_CHANGED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"targets": [t.name for t in targets]},
    )
    return targets


def detach_everywhere(session: Session, *, target: DistributionTarget, actor: Actor) -> int:
    """Detaches ``target`` from every certificate it is attached to (each certificate's
    timeline records its new target list); returns how many. Files already deployed stay
    on the target. The caller commits."""
    require(actor, "admin", "Detaching a distribution target from its certificates")
    links = list(
        session.scalars(select(CertificateTarget).where(CertificateTarget.target_id == target.id))
    )
    for link in links:
        session.delete(link)
    session.flush()
    for link in links:
        cert = session.get(Certificate, link.certificate_id)
        assert cert is not None
        audit.record(
            session,
            type=EventType.CERT_TARGETS_CHANGED,
            actor=actor.email,
            project_id=cert.project_id,
            subject_type="certificate",
            subject_id=cert.id,
            detail={
                "targets": [t.name for t in attached_targets(session, cert.id)],
                "detached": target.name,
            },
        )
    return len(links)


def attached_targets(session: Session, cert_id: str) -> list[DistributionTarget]:
    stmt = (
        select(DistributionTarget)
        .join(CertificateTarget, CertificateTarget.target_id == DistributionTarget.id)
        .where(CertificateTarget.certificate_id == cert_id)
        .order_by(DistributionTarget.name)
    )
    return list(session.scalars(stmt))


# -- deployments -------------------------------------------------------------------------


def create_deployments(
    session: Session,
    *,
    cert: Certificate,
    version: CertificateVersion,
    targets: Sequence[DistributionTarget],
    reason: str,
    requested_by: str,
    launch: DeploymentLauncher,
    workflow_id: Any,
) -> list[Deployment]:
    """A pending row per target, and its workflow enqueued in the same transaction.
    ``workflow_id(deployment)`` names the workflow (deterministic for fan-out)."""
    rows: list[Deployment] = []
    for t in targets:
        retry = RetryPolicy.model_validate(t.config.get("retry") or {})
        dep = Deployment(
            id=new_id(),
            certificate_id=cert.id,
            target_id=t.id,
            version_id=version.id,
            reason=reason,
            status=DeployStatus.PENDING,
            attempts=0,
            max_attempts=retry.max_attempts,
            requested_by=requested_by,
        )
        session.add(dep)
        rows.append(dep)
    session.flush()
    for dep in rows:
        launch(session, dep.id, workflow_id(dep))
    return rows


def _deployment_out(
    dep: Deployment, target: DistributionTarget, version: CertificateVersion | None
) -> DeploymentOut:
    return DeploymentOut(
        id=dep.id,
        target=ref(target),
        version=version.seq if version else 0,
        serial=version.serial if version else None,
        reason=dep.reason,
        status=dep.status,
        attempts=dep.attempts,
        max_attempts=dep.max_attempts,
        next_attempt_at=dep.next_attempt_at,
        error=dep.error,
        result=dep.result,
        requested_by=dep.requested_by,
        created_at=dep.created_at,
        started_at=dep.started_at,
        finished_at=dep.finished_at,
    )


def deployments_of(session: Session, *, cert: Certificate, history: int = 100) -> DeploymentsOut:
    """Each attached target's latest deployment, and the ``history`` most recent ones."""

    def rows(stmt: Any) -> list[tuple[Deployment, DistributionTarget, CertificateVersion]]:
        full = (
            select(Deployment, DistributionTarget, CertificateVersion)
            .join(DistributionTarget, DistributionTarget.id == Deployment.target_id)
            .join(CertificateVersion, CertificateVersion.id == Deployment.version_id)
            .where(Deployment.certificate_id == cert.id)
        )
        return [(d, t, v) for d, t, v in session.execute(stmt(full)).all()]

    newest = (Deployment.created_at.desc(), Deployment.id.desc())
    ranked = (
        select(
            Deployment.id,
            func.row_number().over(partition_by=Deployment.target_id, order_by=newest).label("n"),
        )
        .where(Deployment.certificate_id == cert.id)
        .subquery()
    )
    latest = {
        t.id: _deployment_out(d, t, v)
        for d, t, v in rows(
            lambda q: q.join(ranked, ranked.c.id == Deployment.id).where(ranked.c.n == 1)
        )
    }
    past = (
        [_deployment_out(d, t, v) for d, t, v in rows(lambda q: q.order_by(*newest).limit(history))]
        if history
        else []
    )
    items = [
        TargetDeployments(target=ref(t), latest=latest.get(t.id))
        for t in attached_targets(session, cert.id)
    ]
    return DeploymentsOut(items=items, history=past)


def deployment_out(session: Session, dep: Deployment) -> DeploymentOut:
    target = session.get(DistributionTarget, dep.target_id)
    assert target is not None
    return _deployment_out(dep, target, session.get(CertificateVersion, dep.version_id))


# -- material, deploy and dry run -------------------------------------------------------------


def material_for(
    session: Session, kek: KeyEncryptionKey, cert: Certificate, version: CertificateVersion
) -> Material:
    chain = material.chain_pem(session, kek, version)
    key_pem = material.private_key_pem(session, kek, version)
    return Material.from_chain(
        certificate_id=cert.id,
        version_id=version.id,
        version=version.seq,
        common_name=cert.common_name,
        names=tuple(cert.names),
        chain=chain,
        key_pem=key_pem,
    )


async def deploy_once(
    settings: Settings, material: Material, state: dict[str, Any], delivery_id: str
) -> DeployResult:
    """One attempt: the plugin's deploy, then the optional post-deploy check."""
    plugin = plugins.build(settings.kind, settings.config, delivery_id=delivery_id)
    result = await plugin.deploy(material, state)
    if settings.check is None:
        return result
    verified = await verify_served(settings.check, material)
    return DeployResult(
        actions=(*result.actions, verified),
        state=result.state,
        detail={**result.detail, "post_deploy_check": "passed"},
    )


async def _dry_one(settings: Settings, material: Material, state: dict[str, Any]) -> DryRunReport:
    try:
        plugin = plugins.build(settings.kind, settings.config)
        report = await asyncio.wait_for(plugin.dry_run(material, state), DRY_RUN_TIMEOUT)
    except TimeoutError:
        report = DryRunReport((Check("timeout", False, f"no answer in {DRY_RUN_TIMEOUT:g} s"),))
    except DistributionError as exc:
        report = DryRunReport((Check("error", False, str(exc)),))
    if settings.check is not None:
        c = settings.check
        report = DryRunReport(
            report.checks,
            (*report.would, f"check that {c.host}:{c.port} then serves serial {material.serial}"),
        )
    return report


def prepare_deploy(
    session: Session,
    *,
    cert: Certificate,
    target_ids: Sequence[str] | None,
    actor: Actor,
) -> tuple[CertificateVersion, list[DistributionTarget]]:
    """Which version and targets a deploy request means; refuses what cannot be deployed."""
    require(actor, "operator", "Deploying a certificate")
    if cert.csr_provided:
        raise Conflict(BYO_CSR_REFUSAL)
    if cert.status == CertStatus.REVOKED:
        raise Conflict("the certificate is revoked: deploying it would install a dead certificate")
    version = (
        session.get(CertificateVersion, cert.current_version_id)
        if cert.current_version_id
        else None
    )
    if version is None or version.chain_secret_id is None:
        raise Conflict("the certificate has not been issued yet: nothing to deploy")
    attached = attached_targets(session, cert.id)
    if target_ids is None:
        targets = [t for t in attached if t.enabled]
        if attached and not targets:
            raise Conflict(
                "every target attached to this certificate is disabled: enable one in "
                "Settings → Targets first"
            )
    else:
        targets = check_target_ids(
            session, project_id=cert.project_id, ids=target_ids, field="targets"
        )
        ids = {t.id for t in attached}
        for i, t in enumerate(targets):
            if t.id not in ids:
                raise InvalidInput.field(
                    f"targets[{i}]", f"target {t.name!r} is not attached to this certificate"
                )
            if not t.enabled:
                raise InvalidInput.field(
                    f"targets[{i}]", f"target {t.name!r} is disabled: enable it first"
                )
    if not targets:
        raise Conflict("the certificate has no distribution target to deploy to")
    return version, targets


def dry_run(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    version: CertificateVersion,
    targets: Sequence[DistributionTarget],
) -> list[DryRunItem]:
    """Checks every target at once; nothing is written anywhere (not even here)."""
    material = material_for(session, kek, cert, version)
    jobs = []
    for t in targets:
        link = session.get(CertificateTarget, (cert.id, t.id))
        jobs.append((t, load_settings(session, kek, t), dict(link.state) if link else {}))

    async def run_all() -> list[DryRunReport]:
        return list(await asyncio.gather(*(_dry_one(s, material, st) for _, s, st in jobs)))

    reports = asyncio.run(run_all())
    return [
        DryRunItem(target=ref(t), **report.as_dict())
        for (t, _, _), report in zip(jobs, reports, strict=True)
    ]


def prepare_test(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    project_id: str,
    target_id: str,
    actor: Actor,
) -> Settings:
    """The settings a target's Test runs with (admins only: it uses the credentials)."""
    require(actor, "admin", "Testing a distribution target")
    target = get_target(session, project_id=project_id, target_id=target_id)
    return load_settings(session, kek, target)


def run_target_test(settings: Settings) -> TargetTestOut:
    """The target's own check (its ``dry_run`` with a throwaway certificate: connects,
    checks access, writes nothing), then the post-deploy check's TLS handshake. Network
    I/O: call it with no transaction open."""

    async def run() -> TargetTestOut:
        throwaway = probe.probe_material()
        report = await _dry_one(settings, throwaway, {})
        steps = [TargetTestStep(step=c.name, ok=c.ok, detail=c.detail) for c in report.checks]
        if not steps:
            steps.append(TargetTestStep(step="check", ok=True, detail="nothing to check"))
        if settings.check is not None:
            steps.append(await probe.handshake_step(settings.check))
        would = [
            w.replace(f"serial {throwaway.serial}", "the new certificate").replace(
                probe.PROBE_NAME, "the certificate"
            )
            for w in report.would
        ]
        return TargetTestOut(ok=all(s.ok for s in steps), steps=steps, would=would)

    return asyncio.run(run())


def record_dry_run(
    session: Session, *, cert: Certificate, actor: Actor, results: list[DryRunItem], at: datetime
) -> None:
    audit.record(
        session,
        type=EventType.CERT_DEPLOY_DRY_RUN,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"results": [{"target": r.target.name, "ok": r.ok} for r in results]},
        at=at,
    )


def request_deploy(
    session: Session,
    kek: KeyEncryptionKey,
    *,
    cert: Certificate,
    target_ids: Sequence[str] | None,
    preview: bool,
    actor: Actor,
    launch: DeploymentLauncher,
    workflow_id: Any,
    now: datetime,
) -> DeployOut:
    """Redeploys the current version (audited as ``cert.deploy_requested``); with
    ``preview`` checks every target and reports what would be written, changing nothing
    (the check talks to the targets: call this off the event loop). The caller commits."""
    version, chosen = prepare_deploy(session, cert=cert, target_ids=target_ids, actor=actor)
    if preview:
        results = dry_run(session, kek, cert=cert, version=version, targets=chosen)
        record_dry_run(session, cert=cert, actor=actor, results=results, at=now)
        return DeployOut(dry_run=True, results=results)
    rows = create_deployments(
        session,
        cert=cert,
        version=version,
        targets=chosen,
        reason="redeploy",
        requested_by=actor.email,
        launch=launch,
        workflow_id=workflow_id,
    )
    audit.record(
        session,
        type=EventType.CERT_DEPLOY_REQUESTED,
        actor=actor.email,
        project_id=cert.project_id,
        subject_type="certificate",
        subject_id=cert.id,
        detail={"targets": [t.name for t in chosen], "version": version.seq},
    )
    return DeployOut(dry_run=False, deployments=[deployment_out(session, d) for d in rows])
