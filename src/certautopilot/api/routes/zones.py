"""DNS zones of a project: add, list, edit, delete, test, and which zone holds a name.

Writes that reach a DNS provider (create and edit check the settings, Test writes a
record) end the read transaction first: no transaction stays open during network I/O.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from certautopilot.auth import service as auth
from certautopilot.certificates import caa_check
from certautopilot.deps import DbSession, DnsResolver, InProject, State
from certautopilot.dns import service as zones
from certautopilot.dns.schemas import (
    ZoneCaaOut,
    ZoneIn,
    ZoneOut,
    ZonePatch,
    ZoneSuggestion,
    ZoneTestOut,
)
from certautopilot.issuers import service as issuers
from certautopilot.workflows import commands

router = APIRouter(tags=["zones"])


@router.post(
    "/projects/{project}/zones", status_code=status.HTTP_201_CREATED, response_model=ZoneOut
)
def create_zone(body: ZoneIn, ctx: InProject, session: DbSession, state: State) -> ZoneOut:
    auth.require(ctx.actor, "admin", "Adding a DNS zone")
    zone = commands.create_zone(
        session, state.kek, project_id=ctx.project.id, body=body, actor=ctx.actor
    )
    return zones.to_out(zone)


@router.get("/projects/{project}/zones", response_model=list[ZoneOut])
def list_zones(ctx: InProject, session: DbSession) -> list[ZoneOut]:
    return [zones.to_out(z) for z in zones.list_zones(session, project_id=ctx.project.id)]


@router.get("/projects/{project}/zones/suggest", response_model=ZoneSuggestion)
def suggest_zone(
    ctx: InProject,
    session: DbSession,
    resolver: DnsResolver,
    name: str = Query(min_length=1, max_length=253),
) -> ZoneSuggestion:
    """The project zone holding ``name`` (longest suffix) or, for a name in none, the zone
    apex found by walking up SOA records (the zone to add)."""
    found = zones.zone_for_name(session, project_id=ctx.project.id, name=name)
    session.commit()  # the SOA walk is network I/O
    return zones.suggest_zone(name, found, resolver=resolver)


@router.get("/projects/{project}/zones/{zone_id}", response_model=ZoneOut)
def get_zone(zone_id: str, ctx: InProject, session: DbSession) -> ZoneOut:
    return zones.to_out(zones.get_zone(session, project_id=ctx.project.id, zone_id=zone_id))


@router.get("/projects/{project}/zones/{zone_id}/caa", response_model=ZoneCaaOut)
def zone_caa(zone_id: str, ctx: InProject, session: DbSession) -> ZoneCaaOut:
    """The CAA records governing the zone (read on its authoritative servers), what they
    say about each ACME issuer of the project, and the records that would allow them."""
    zone = zones.get_zone(session, project_id=ctx.project.id, zone_id=zone_id)
    found = issuers.list_issuers(session, project_id=ctx.project.id)
    session.expunge_all()
    session.commit()  # the lookups are network I/O
    return caa_check.zone_report(zone, found)


@router.patch("/projects/{project}/zones/{zone_id}", response_model=ZoneOut)
def update_zone(
    zone_id: str, body: ZonePatch, ctx: InProject, session: DbSession, state: State
) -> ZoneOut:
    auth.require(ctx.actor, "admin", "Editing a DNS zone")
    zone = commands.update_zone(
        session, state.kek, project_id=ctx.project.id, zone_id=zone_id, patch=body, actor=ctx.actor
    )
    return zones.to_out(zone)


@router.delete("/projects/{project}/zones/{zone_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_zone(zone_id: str, ctx: InProject, session: DbSession) -> Response:
    auth.require(ctx.actor, "admin", "Deleting a DNS zone")
    zones.delete_zone(session, project_id=ctx.project.id, zone_id=zone_id, actor=ctx.actor)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/projects/{project}/zones/{zone_id}/test", response_model=ZoneTestOut)
def test_zone(zone_id: str, ctx: InProject, session: DbSession, state: State) -> ZoneTestOut:
    """Writes, reads on every authoritative server and removes a probe TXT record."""
    auth.require(ctx.actor, "admin", "Testing a DNS zone")
    probe = zones.prepare_test(session, state.kek, project_id=ctx.project.id, zone_id=zone_id)
    session.commit()  # the test is network I/O
    return zones.run_zone_test(probe)
