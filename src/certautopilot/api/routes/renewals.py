"""A project's renewal backlog: what waits to be renewed, per issuer, and when it clears."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, InProject, State
from certautopilot.renewal import backlog, digest

router = APIRouter(tags=["renewal"])


@router.get("/projects/{project}/renewals/backlog")
def renewal_backlog(ctx: InProject, session: DbSession, state: State) -> dict[str, Any]:
    rows = backlog.for_project(
        session, project_id=ctx.project.id, now=utcnow(), settings=state.settings
    )
    return backlog.to_out(rows)


class ExpiryAlertRuleBody(BaseModel):
    thresholds_days: list[Annotated[int, Field(ge=1, le=digest.MAX_DAYS)]] = Field(
        default=list(digest.DEFAULT_THRESHOLDS),
        max_length=digest.MAX_THRESHOLDS,
        description="days before expiry at which a certificate is listed in the daily digest",
    )
    enabled: bool = True


@router.get("/projects/{project}/expiry-alerts", response_model=ExpiryAlertRuleBody)
def get_expiry_alerts(ctx: InProject, session: DbSession) -> ExpiryAlertRuleBody:
    """The project's expiry alert rule (every certificate, managed or imported)."""
    rule = digest.rule_of(session, ctx.project.id)
    return ExpiryAlertRuleBody(thresholds_days=list(rule.thresholds_days), enabled=rule.enabled)


@router.put("/projects/{project}/expiry-alerts", response_model=ExpiryAlertRuleBody)
def put_expiry_alerts(
    body: ExpiryAlertRuleBody, ctx: InProject, session: DbSession
) -> ExpiryAlertRuleBody:
    rule = digest.set_rule(
        session,
        project_id=ctx.project.id,
        thresholds_days=body.thresholds_days,
        enabled=body.enabled,
        actor=ctx.actor,
    )
    session.commit()
    return ExpiryAlertRuleBody(thresholds_days=list(rule.thresholds_days), enabled=rule.enabled)
