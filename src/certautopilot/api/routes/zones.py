from __future__ import annotations

from fastapi import APIRouter, status

from certautopilot.deps import DbSession, InProject, State
from certautopilot.dns import service as zones
from certautopilot.dns.schemas import ZoneIn, ZoneOut

router = APIRouter(tags=["zones"])


@router.post(
    "/projects/{project}/zones", status_code=status.HTTP_201_CREATED, response_model=ZoneOut
)
def create_zone(body: ZoneIn, ctx: InProject, session: DbSession, state: State) -> ZoneOut:
    zone = zones.create_zone(
        session, state.kek, project_id=ctx.project.id, body=body, actor=ctx.actor
    )
    session.commit()
    return zones.to_out(zone)


@router.get("/projects/{project}/zones", response_model=list[ZoneOut])
def list_zones(ctx: InProject, session: DbSession) -> list[ZoneOut]:
    return [zones.to_out(z) for z in zones.list_zones(session, project_id=ctx.project.id)]


@router.get("/projects/{project}/zones/{zone_id}", response_model=ZoneOut)
def get_zone(zone_id: str, ctx: InProject, session: DbSession) -> ZoneOut:
    return zones.to_out(zones.get_zone(session, project_id=ctx.project.id, zone_id=zone_id))
