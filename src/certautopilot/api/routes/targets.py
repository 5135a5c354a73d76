"""Distribution targets of a project, and a certificate's targets and deployments."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from certautopilot.certificates import service as certs
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, InProject, State
from certautopilot.distribution import service as targets
from certautopilot.distribution.schemas import (
    AttachIn,
    DeployIn,
    DeploymentsOut,
    DeployOut,
    TargetIn,
    TargetOut,
    TargetPatch,
    TargetRef,
    TargetTestOut,
)
from certautopilot.workflows.distribution import enqueuer, redeploy_workflow_id

router = APIRouter(tags=["distribution"])
BASE = "/projects/{project}/targets"
CERT = "/projects/{project}/certificates/{cert_id}"


@router.post(BASE, status_code=status.HTTP_201_CREATED, response_model=TargetOut)
def create_target(body: TargetIn, ctx: InProject, session: DbSession, state: State) -> TargetOut:
    target = targets.create_target(
        session, state.kek, project_id=ctx.project.id, body=body, actor=ctx.actor
    )
    session.commit()
    return targets.to_out(target)


@router.get(BASE, response_model=list[TargetOut])
def list_targets(ctx: InProject, session: DbSession) -> list[TargetOut]:
    return [targets.to_out(t) for t in targets.list_targets(session, project_id=ctx.project.id)]


@router.get(BASE + "/{target_id}", response_model=TargetOut)
def get_target(target_id: str, ctx: InProject, session: DbSession) -> TargetOut:
    return targets.to_out(
        targets.get_target(session, project_id=ctx.project.id, target_id=target_id)
    )


@router.patch(BASE + "/{target_id}", response_model=TargetOut)
def update_target(
    target_id: str, body: TargetPatch, ctx: InProject, session: DbSession, state: State
) -> TargetOut:
    """Edits settings and rotates credentials (checked as on create; never returned)."""
    target = targets.get_target(session, project_id=ctx.project.id, target_id=target_id)
    targets.update_target(session, state.kek, target=target, body=body, actor=ctx.actor)
    session.commit()
    return targets.to_out(target)


@router.delete(BASE + "/{target_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_target(target_id: str, ctx: InProject, session: DbSession) -> Response:
    target = targets.get_target(session, project_id=ctx.project.id, target_id=target_id)
    targets.delete_target(session, target=target, actor=ctx.actor)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(BASE + "/{target_id}/test", response_model=TargetTestOut)
def test_target(target_id: str, ctx: InProject, session: DbSession, state: State) -> TargetTestOut:
    """Runs the target's own check with a throwaway certificate (connects, checks access,
    writes nothing) and, with a post-deploy check, a TLS handshake with its host."""
    settings = targets.prepare_test(
        session, state.kek, project_id=ctx.project.id, target_id=target_id, actor=ctx.actor
    )
    session.commit()  # the test is network I/O
    return targets.run_target_test(settings)


@router.get(CERT + "/targets", response_model=list[TargetRef])
def certificate_targets(cert_id: str, ctx: InProject, session: DbSession) -> list[TargetRef]:
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    return [targets.ref(t) for t in targets.attached_targets(session, cert.id)]


@router.put(CERT + "/targets", response_model=list[TargetRef])
def set_certificate_targets(
    cert_id: str, body: AttachIn, ctx: InProject, session: DbSession
) -> list[TargetRef]:
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    found = targets.set_targets(session, cert=cert, target_ids=body.targets, actor=ctx.actor)
    session.commit()
    return [targets.ref(t) for t in found]


@router.get(CERT + "/deployments", response_model=DeploymentsOut)
def deployments(
    cert_id: str,
    ctx: InProject,
    session: DbSession,
    history: int = Query(default=100, ge=0, le=1000, description="past deployments listed"),
) -> DeploymentsOut:
    """Per attached target, its latest deployment; then the most recent ``history`` ones."""
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    return targets.deployments_of(session, cert=cert, history=history)


@router.post(CERT + "/deploy", response_model=DeployOut)
def deploy(
    cert_id: str,
    body: DeployIn,
    ctx: InProject,
    session: DbSession,
    state: State,
    response: Response,
) -> DeployOut:
    """Redeploys the current version; with ``dry_run`` checks every target (connectivity,
    permissions) and reports what would be written, changing nothing."""
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    out = targets.request_deploy(
        session,
        state.kek,
        cert=cert,
        target_ids=body.targets,
        preview=body.dry_run,
        actor=ctx.actor,
        launch=enqueuer(state.launcher.client),
        workflow_id=lambda dep: redeploy_workflow_id(dep.id),
        now=utcnow(),
    )
    session.commit()
    if not out.dry_run:
        response.status_code = status.HTTP_202_ACCEPTED
    return out
