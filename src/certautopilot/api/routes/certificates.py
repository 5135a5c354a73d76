from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from certautopilot.audit import service as audit
from certautopilot.certificates import idempotency, inventory, lifecycle
from certautopilot.certificates import persist as persist_records
from certautopilot.certificates import service as certs
from certautopilot.certificates.preflight import preflight
from certautopilot.certificates.schemas import (
    CertificateIn,
    CertificateList,
    CertificateOut,
    ExpiryHistogramOut,
    PersistRecordList,
    PersistRecordOut,
    PersistServerOut,
    Pkcs12In,
    PreflightOut,
    RevokeIn,
    RevokeOut,
    Timeline,
    TimelineEvent,
    VersionRef,
    WeekCountOut,
)
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, InProject, State
from certautopilot.workflows import commands

router = APIRouter(tags=["certificates"])
BASE = "/projects/{project}/certificates"
TIMELINE_LIMIT = 100


class TimelineOrder(StrEnum):
    OLDEST = "oldest"
    NEWEST = "newest"


@router.post(BASE, status_code=status.HTTP_202_ACCEPTED, response_model=CertificateOut)
def create_certificate(
    body: CertificateIn,
    ctx: InProject,
    session: DbSession,
    state: State,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Send the same key again (same body) to get the first answer back "
            "instead of a second certificate: per project and caller, remembered for "
            f"CERTAUTOPILOT_IDEMPOTENCY_KEY_HOURS (24 h); {idempotency.KEY_RULE}.",
        ),
    ] = None,
) -> Response:
    answer = commands.request_certificate(
        session,
        state.launcher,
        project_id=ctx.project.id,
        body=body,
        actor=ctx.actor,
        idempotency_key=idempotency_key,
        key_ttl=state.settings.idempotency_key_ttl,
        now=utcnow(),
        base_url=state.settings.public_url,
        limits=state.settings.rate_limits,
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


@router.post(BASE + "/preflight", response_model=PreflightOut)
def preflight_certificate(body: CertificateIn, ctx: InProject, session: DbSession) -> PreflightOut:
    """The request as it would be issued, and every project-policy warning about it."""
    return preflight(session, project_id=ctx.project.id, body=body, strict=False).out()


@router.get(BASE, response_model=CertificateList)
def list_certificates(
    ctx: InProject,
    session: DbSession,
    status_: str | None = Query(default=None, alias="status"),
    issuer: str | None = Query(default=None, max_length=64, description="an issuer id"),
    expiring_before: datetime | None = None,
    expiring_after: datetime | None = Query(
        default=None, description="current version expires at or after this time"
    ),
    q: str | None = Query(default=None, max_length=253),
    sort: str = Query(
        default=inventory.DEFAULT_SORT,
        max_length=20,
        description="common_name, not_after, status or created_at; '-' in front for "
        "descending. Not yet issued certificates (no not_after) sort after every date.",
    ),
    limit: int = Query(default=50, ge=1, le=1000),
    cursor: str | None = Query(
        default=None,
        max_length=500,
        description="next_cursor of the previous page, asked with the same sort",
    ),
    managed: bool | None = Query(
        default=None, description="true: issued here; false: imported (not yet adopted)"
    ),
) -> CertificateList:
    """Keyset-paged on (sort key, id): pages neither repeat nor skip a row that stays put."""
    rows, next_cursor = inventory.list_certificates(
        session,
        project_id=ctx.project.id,
        status=status_,
        issuer_id=issuer,
        expiring_before=expiring_before,
        expiring_after=expiring_after,
        q=q,
        sort=sort,
        limit=limit,
        cursor=cursor,
        managed=managed,
    )
    return CertificateList(items=certs.to_out_many(session, rows), next_cursor=next_cursor)


@router.get(BASE + "/expiry-histogram", response_model=ExpiryHistogramOut)
def expiry_histogram(
    ctx: InProject,
    session: DbSession,
    weeks: int = Query(default=12, ge=1, le=inventory.MAX_WEEKS),
    issuer: str | None = Query(default=None, max_length=64, description="an issuer id"),
) -> ExpiryHistogramOut:
    """How many certificates (not revoked) expire in each coming week; week 0 starts now
    and ends at midnight UTC seven days after today's; ``expired``: already past."""
    hist = inventory.expiry_histogram(
        session, project_id=ctx.project.id, now=utcnow(), weeks=weeks, issuer_id=issuer
    )
    return ExpiryHistogramOut(
        now=hist.now,
        weeks=[WeekCountOut(start=w.start, end=w.end, count=w.count) for w in hist.weeks],
        expired=hist.expired,
        later=hist.later,
    )


@router.get(BASE + "/{cert_id}", response_model=CertificateOut)
def get_certificate(cert_id: str, ctx: InProject, session: DbSession) -> CertificateOut:
    return certs.to_out(
        session, certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    )


@router.post(
    BASE + "/{cert_id}/renew", status_code=status.HTTP_202_ACCEPTED, response_model=CertificateOut
)
def renew_certificate(
    cert_id: str, ctx: InProject, session: DbSession, state: State
) -> CertificateOut:
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    certs.renew_certificate(
        session,
        cert=cert,
        actor=ctx.actor,
        launcher=state.launcher,
        now=utcnow(),
        limits=state.settings.rate_limits,
    )
    session.commit()
    return certs.to_out(session, cert)


@router.post(BASE + "/{cert_id}/revoke", response_model=RevokeOut)
def revoke_certificate(
    cert_id: str, body: RevokeIn, ctx: InProject, session: DbSession, state: State
) -> RevokeOut:
    """Revokes the current version (and, with ``all_versions``, every earlier version still
    valid); the answer names the versions revoked and those still valid."""
    done = commands.revoke_certificate(
        session,
        state.kek,
        project_id=ctx.project.id,
        cert_id=cert_id,
        reason=body.reason,
        record_only=body.record_only,
        all_versions=body.all_versions,
        actor=ctx.actor,
    )
    out = certs.to_out(session, done.certificate)
    return RevokeOut(
        **out.model_dump(),
        revoked_versions=[VersionRef(version=r.seq, serial=r.serial) for r in done.revoked],
        still_valid_versions=[VersionRef(version=v.seq, serial=v.serial) for v in done.still_valid],
    )


@router.get(BASE + "/{cert_id}/persist-record", response_model=PersistRecordList)
def persist_record(
    cert_id: str, ctx: InProject, session: DbSession, state: State
) -> PersistRecordList:
    """The dns-persist-01 record of each manual-zone name, checked on its zone's servers."""
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    reports = persist_records.certificate_persist_records(
        session, state.kek, cert=cert, now=utcnow()
    )
    return PersistRecordList(
        items=[
            PersistRecordOut(
                name=r.name,
                zone=r.zone,
                record_name=r.record_name,
                value=r.value,
                status=r.status.value,
                detail=r.detail,
                persist_until=r.persist_until,
                issuer_domain=r.issuer_domain,
                servers=[
                    PersistServerOut(
                        server=a.server, values=list(a.values), error=a.error, status=v
                    )
                    for a, v in r.servers
                ],
            )
            for r in reports
        ]
    )


@router.get(BASE + "/{cert_id}/timeline", response_model=Timeline)
def timeline(
    cert_id: str,
    ctx: InProject,
    session: DbSession,
    order: TimelineOrder = Query(
        default=TimelineOrder.OLDEST,
        description="oldest (the default, as before paging) or newest first",
    ),
    limit: int = Query(default=TIMELINE_LIMIT, ge=1, le=1000),
    cursor: str | None = Query(
        default=None,
        max_length=200,
        description="next_cursor of the previous page, asked with the same order",
    ),
) -> Timeline:
    """Keyset-paged on the event id: ``next_cursor`` is null on the last page."""
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    events, next_cursor = audit.events_page(
        session,
        subject_type="certificate",
        subject_id=cert.id,
        limit=limit,
        newest_first=order == TimelineOrder.NEWEST,
        cursor=cursor,
    )
    return Timeline(
        step=cert.step,
        events=[
            TimelineEvent(at=e.at, type=e.type, actor=e.actor, detail=e.detail) for e in events
        ],
        next_cursor=next_cursor,
    )


@router.post(
    BASE + "/{cert_id}/dns-confirm",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CertificateOut,
)
def dns_confirm(cert_id: str, ctx: InProject, session: DbSession, state: State) -> CertificateOut:
    cert = commands.confirm_dns(
        session, state.launcher, project_id=ctx.project.id, cert_id=cert_id, actor=ctx.actor
    )
    return certs.to_out(session, cert)


@router.post(
    BASE + "/{cert_id}/check-ca",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CertificateOut,
)
def check_ca(cert_id: str, ctx: InProject, session: DbSession, state: State) -> CertificateOut:
    """AD CS: ask the waiting workflow to check the CA now (e.g. right after approval)."""
    cert = commands.check_ca(
        session, state.launcher, project_id=ctx.project.id, cert_id=cert_id, actor=ctx.actor
    )
    return certs.to_out(session, cert)


def _download(what: str):  # type: ignore[no-untyped-def]
    def handler(
        cert_id: str, ctx: InProject, session: DbSession, state: State
    ) -> PlainTextResponse:
        cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
        pem = lifecycle.download(session, state.kek, cert=cert, what=what, actor=ctx.actor)
        session.commit()
        return PlainTextResponse(
            pem, media_type="application/x-pem-file", headers={"Cache-Control": "no-store"}
        )

    return handler


for _what in lifecycle.DOWNLOADS:
    router.add_api_route(
        BASE + "/{cert_id}/" + _what + ".pem",
        _download(_what),
        methods=["GET"],
        name=f"download_{_what}",
        response_class=PlainTextResponse,
    )


@router.post(
    BASE + "/{cert_id}/certificate.p12",
    response_class=Response,
    responses={200: {"content": {"application/x-pkcs12": {}}}},
)
def download_pkcs12(
    cert_id: str, body: Pkcs12In, ctx: InProject, session: DbSession, state: State
) -> Response:
    """The key, certificate and chain as PKCS#12 under ``password`` (admins only; audited
    as ``key.exported``). The password is used for this file only, never stored."""
    cert = certs.get_certificate(session, project_id=ctx.project.id, cert_id=cert_id)
    data = lifecycle.pkcs12_download(
        session, state.kek, cert=cert, password=body.password.get_secret_value(), actor=ctx.actor
    )
    session.commit()
    return Response(
        data,
        media_type="application/x-pkcs12",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{lifecycle.file_stem(cert)}.p12"',
        },
    )
