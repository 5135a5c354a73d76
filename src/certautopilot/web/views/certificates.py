"""Certificates: inventory, New Certificate (live preflight), detail with live timeline."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError

from certautopilot import links
from certautopilot.approvals import service as approvals
from certautopilot.audit import service as audit
from certautopilot.audit.authorship import authorship
from certautopilot.auth import service as auth
from certautopilot.certificates import inventory as inv
from certautopilot.certificates import lifecycle
from certautopilot.certificates import persist as persist_records
from certautopilot.certificates import service as certs
from certautopilot.certificates import versions as cert_versions
from certautopilot.certificates.preflight import preflight
from certautopilot.certificates.schemas import (
    CONTROL_CHARACTERS,
    CertificateIn,
    Pkcs12In,
)
from certautopilot.certificates.states import CertStatus
from certautopilot.certificates.zones import NO_ZONE, ZONE_DISABLED
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, State
from certautopilot.distribution import service as distribution
from certautopilot.distribution import states as deploy_states
from certautopilot.dns import service as dns
from certautopilot.dns.persist import PersistState
from certautopilot.errors import (
    CertAutoPilotError,
    Conflict,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import IssuerStatus
from certautopilot.policy import service as policy
from certautopilot.policy.schemas import PolicyRules
from certautopilot.renewal import backlog as renewal_backlog
from certautopilot.renewal import profiles
from certautopilot.validation import field_name
from certautopilot.web import timeline
from certautopilot.web.common import Form, InProjectWeb, Web, WebRoute, describe
from certautopilot.workflows import commands
from certautopilot.workflows.distribution import enqueuer, redeploy_workflow_id

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BASE = "/p/{project}/certificates"
PAGE_SIZE = 25
STATUSES = inv.STATUSES
FINAL = {CertStatus.ISSUED, CertStatus.FAILED, CertStatus.REJECTED, CertStatus.REVOKED}
FIELDS = (
    "issuer",
    "common_name",
    "sans",
    "key_type",
    "auto_renew",
    "renewal_window",
    "distribution_targets",
    "approval",
    "csr_pem",
    "challenge_overrides",
    "adcs_template",
    "acme_profile",
)
KEY_TYPES = (
    (
        "ecdsa-p256",
        "ECDSA P-256",
        "The right default. Smallest, fastest handshake, lowest CPU, supported everywhere modern.",
    ),
    ("ecdsa-p384", "ECDSA P-384", "For higher-assurance use cases. Same wins, larger margin."),
    (
        "rsa-2048",
        "RSA 2048",
        "When a downstream device only speaks RSA (older F5 partitions, ancient JVMs).",
    ),
    (
        "rsa-3072",
        "RSA 3072",
        "Only when a compliance regime demands it. Significantly slower TLS handshake.",
    ),
    (
        "rsa-4096",
        "RSA 4096",
        "Only when a compliance regime demands it. Significantly slower TLS handshake.",
    ),
)


# -- inventory -----------------------------------------------------------------------------
SORT_LABELS = {
    "-created_at": "Newest first",
    "created_at": "Oldest first",
    "common_name": "Name A→Z",
    "-common_name": "Name Z→A",
    "not_after": "Expires soonest",
    "-not_after": "Expires latest",
    "status": "Status A→Z",
    "-status": "Status Z→A",
}
CHART_WEEKS = 12
#: ``?when=`` filters of the dashboard's links (revoked certificates left out)
WHEN = {
    "expired": "already expired",
    "upcoming": "not expired yet",
    "later": f"expiring after the next {CHART_WEEKS} weeks",
}


def _chart_end(now: datetime) -> datetime:
    """Where the chart's last week ends (its "later" bar starts)."""
    day0 = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day0 + timedelta(days=7 * CHART_WEEKS)


def _week(value: str) -> datetime | None:
    """The start (midnight UTC) of a chart week given as YYYY-MM-DD, or None."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@router.get(BASE, response_class=HTMLResponse)
def inventory(
    web: InProjectWeb,
    session: DbSession,
    state: State,
    q: str = "",
    status: str = "",
    issuer: str = "",
    cursor: str = "",
    expiring: str = "",
    week: str = "",
    sort: str = "",
    when: str = "",
    managed: str = "",
) -> Response:
    assert web.project is not None
    managed = managed if managed in ("yes", "no") else ""
    now = utcnow()
    when = when if when in WHEN else ""
    days = int(expiring) if expiring.isdigit() and 0 < int(expiring) <= 3650 else None
    sort = sort if sort in SORT_LABELS else inv.DEFAULT_SORT
    issuer_rows = issuers.list_issuers(session, project_id=web.project.id)
    issuer_names = {i.id: i.name for i in issuer_rows}
    issuer = issuer if issuer in issuer_names else ""
    week_start = _week(week)
    window = inv.week_window(week_start, now) if week_start else None
    before = now + timedelta(days=days) if days else None
    if window:
        before = min(before, window[1]) if before else window[1]
    after = window[0] if window else None
    if when == "expired":
        before = min(before, now) if before else now
    elif when == "upcoming":
        after = max(after, now) if after else now
    elif when == "later":
        after = _chart_end(now)
    rows, next_cursor = inv.list_certificates(
        session,
        project_id=web.project.id,
        status=status or None,
        issuer_id=issuer or None,
        expiring_before=before,
        expiring_after=after,
        exclude_statuses=(CertStatus.REVOKED,) if window or when else (),
        q=q.strip()[:253] or None,
        sort=sort,
        limit=PAGE_SIZE,
        cursor=cursor or None,
        managed={"yes": True, "no": False}.get(managed),
    )
    chart = inv.expiry_histogram(
        session, project_id=web.project.id, now=now, weeks=CHART_WEEKS, issuer_id=issuer or None
    )
    params = {
        "q": q,
        "status": status,
        "issuer": issuer,
        "managed": managed,
        "expiring": str(days or ""),
        "week": week if window else "",
        "when": when,
        "sort": sort if sort != inv.DEFAULT_SORT else "",
    }

    def link(**change: str) -> str:
        merged = {**params, **change}
        return "?" + urlencode({k: v for k, v in merged.items() if v})

    return web.render(
        "certificates/list.html",
        items=certs.to_out_many(session, rows),
        issuer_names=issuer_names,
        issuers=issuer_rows,
        statuses=STATUSES,
        sorts=SORT_LABELS,
        sort=sort,
        next_cursor=next_cursor,
        paged=bool(cursor),
        chart=chart,
        chart_max=max([w.count for w in chart.weeks] + [chart.expired, chart.later, 1]),
        attention=inv.attention(session, project_id=web.project.id, now=now),
        pending_requests=approvals.count_pending(session, project_id=web.project.id),
        when=when,
        when_label=WHEN.get(when, ""),
        backlog=renewal_backlog.for_project(
            session, project_id=web.project.id, now=now, settings=state.settings
        ),
        week_window=window,
        filtered=any(v for k, v in params.items() if k != "sort"),
        link=link,
        q=q,
        status=status,
        issuer=issuer,
        managed=managed,
        expiring=params["expiring"],
        week=params["week"],
    )


# -- new certificate -----------------------------------------------------------------------
_SPLIT = re.compile(r"[\s,;]+")


def _body_from_form(form: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The API body the form describes, and form-level errors (bad override lines...)."""
    errors: list[tuple[str, str]] = []
    body: dict[str, Any] = {
        "issuer": str(form.get("issuer") or ""),
        "common_name": str(form.get("common_name") or "").strip(),
        "sans": [s for s in _SPLIT.split(str(form.get("sans") or "")) if s],
        "key_type": str(form.get("key_type") or "ecdsa-p256"),
        "auto_renew": form.get("auto_renew") == "on",
    }
    days = str(form.get("renew_days") or "").strip()
    if days:
        try:
            body["renewal_window"] = {"days_before_expiry": float(days)}
        except ValueError:
            errors.append(("renewal_window", "must be a number of days, such as 30"))
    targets = form.get("targets[]") or []
    body["distribution_targets"] = [targets] if isinstance(targets, str) else list(targets)
    template = str(form.get("adcs_template") or "").strip()
    if template:
        body["adcs_template"] = template
    profile = str(form.get("acme_profile") or "").strip()
    if profile:
        body["acme_profile"] = profile
    if form.get("byo_csr") == "on":
        body["csr_pem"] = str(form.get("csr_pem") or "")
    overrides: dict[str, Any] = {}
    for n, line in enumerate(str(form.get("challenge_overrides") or "").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3):
            errors.append(
                (
                    "challenge_overrides",
                    f"line {n}: write 'name zone' or 'name zone challenge-name'",
                )
            )
            continue
        overrides[parts[0]] = {"zone": parts[1]}
        if len(parts) == 3:
            overrides[parts[0]]["challenge_name"] = parts[2]
    body["challenge_overrides"] = overrides
    reason = str(form.get("override_reason") or "").strip()
    acks = form.get("ack[]") or []
    acks = [acks] if isinstance(acks, str) else list(acks)
    if reason or acks:
        body["override"] = {"reason": reason, "acknowledged": acks}
    return body, errors


def _field_of(name: str) -> str:
    head = re.split(r"[.\[]", name, maxsplit=1)[0]
    if head == "override":
        return "override"
    return head if head in FIELDS else "form"


def _parse(
    form: dict[str, Any],
) -> tuple[CertificateIn | None, dict[str, Any], dict[str, list[str]]]:
    body, problems = _body_from_form(form)
    errors: dict[str, list[str]] = {}
    for f, m in problems:
        errors.setdefault(f, []).append(m)
    model = None
    try:
        model = CertificateIn.model_validate(body)
    except ValidationError as exc:
        for e in exc.errors():
            name = field_name(tuple(e.get("loc", ())))
            msg = str(e.get("msg", "invalid")).replace("Value error, ", "")
            key = _field_of(name)
            errors.setdefault(key, []).append(msg if name == key else f"{name}: {msg}")
    return (model if not errors else None), body, errors


def _errors_of(exc: InvalidInput) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f, m in exc.errors or [("form", str(exc))]:
        out.setdefault(_field_of(f), []).append(m)
    return out


def _check(web: Web, session: DbSession, form: dict[str, Any]) -> dict[str, Any]:
    """Preflight of what the form holds: warnings and errors per field, and the verdict."""
    assert web.project is not None
    model, body, errors = _parse(form)
    warnings: list[dict[str, str]] = []
    result = None
    if model is not None and model.issuer and (model.common_name or model.csr_pem):
        # The preflight service decides; an override is judged only on submit.
        try:
            result = preflight(
                session,
                project_id=web.project.id,
                body=model.model_copy(update={"override": None}),
                strict=False,
            )
            refused = (NO_ZONE, ZONE_DISABLED)
            warnings = [w.as_dict() for w in result.warnings if w.code not in refused]
            for found in result.warnings:  # nowhere to write the record: no override helps
                if found.code in refused:
                    errors.setdefault(_field_of(found.field), []).append(found.message)
        except InvalidInput as exc:
            for f, msgs in _errors_of(exc).items():
                errors.setdefault(f, []).extend(msgs)
    by_field: dict[str, list[dict[str, str]]] = {}
    for w in warnings:
        by_field.setdefault(w["field"] if w["field"] in FIELDS else "form", []).append(w)
    return {
        "preflight": result.out() if result else None,
        "warnings": warnings,
        "warnings_by_field": by_field,
        "errors": errors,
        "body": body,
        "checked": model is not None,
    }


def _form_context(web: Web, session: DbSession) -> dict[str, Any]:
    assert web.project is not None
    row = policy.get_policy(session, web.project.id)
    rules = PolicyRules.model_validate(row.rules) if row else PolicyRules()
    zones = dns.list_zones(session, project_id=web.project.id)
    project_issuers = [  # a disabled issuer takes no new request: not offered
        i
        for i in issuers.list_issuers(session, project_id=web.project.id)
        if i.status != IssuerStatus.DISABLED
    ]
    return {
        "issuers": project_issuers,
        "offered_profiles": profiles.offered_by(project_issuers),
        "allowed_profiles": rules.allowed_acme_profiles,
        "targets": distribution.list_targets(session, project_id=web.project.id),
        "zones": zones,
        "manual_zones": [z.name for z in zones if dns.is_manual(z)],
        "rules": rules,
        "key_types": KEY_TYPES,
        "fields": FIELDS,
    }


@router.get(BASE + "/new", response_class=HTMLResponse)
def new_form(web: InProjectWeb, session: DbSession) -> Response:
    auth.require(web.ctx.actor, "operator", "Requesting a certificate")
    ctx = _form_context(web, session)
    form = {
        "issuer": ctx["issuers"][0].id if ctx["issuers"] else "",
        "key_type": "ecdsa-p256",
        "auto_renew": "on",
    }
    return web.render(
        "certificates/new.html",
        form=form,
        check={"warnings": [], "warnings_by_field": {}, "errors": {}, "preflight": None},
        **ctx,
    )


@router.post(BASE + "/preflight", response_class=HTMLResponse)
def live_preflight(web: InProjectWeb, form: Form, session: DbSession) -> Response:
    check = _check(web, session, form)
    return web.render(
        "certificates/_preflight.html", check=check, form=form, fields=FIELDS, oob=True
    )


@router.post(BASE + "/new", response_class=HTMLResponse)
def create(web: InProjectWeb, form: Form, session: DbSession, state: State) -> Response:
    auth.require(web.ctx.actor, "operator", "Requesting a certificate")  # as the service does
    model, _, errors = _parse(form)
    check: dict[str, Any] | None = None
    if model is not None:
        try:
            cert = certs.create_certificate(
                session,
                project_id=web.ctx.project.id,
                body=model,
                actor=web.ctx.actor,
                launcher=state.launcher,
                now=utcnow(),
                base_url=state.settings.public_url,
                limits=state.settings.rate_limits,
            )
            session.commit()
        except InvalidInput as exc:
            session.rollback()
            errors = _errors_of(exc)
            if getattr(exc, "warnings", None):
                errors.setdefault("override", []).append(str(exc))
        else:
            slug = web.ctx.project.slug
            if cert.status == CertStatus.AWAITING_APPROVAL:
                return RedirectResponse(links.requests(slug, created=cert.id), status_code=303)
            return RedirectResponse(links.certificate(slug, cert.id), status_code=303)
    check = _check(web, session, form)
    for f, msgs in errors.items():
        for m in msgs:
            if m not in check["errors"].get(f, []):
                check["errors"].setdefault(f, []).append(m)
    return web.render(
        "certificates/new.html",
        status_code=422,
        form=form,
        check=check,
        submitted=True,
        **_form_context(web, session),
    )


# -- detail --------------------------------------------------------------------------------
DEPLOY_BUSY = deploy_states.BUSY
TIMELINE_PAGE = 50  # newest first; "Older events" pages on with ?older=<cursor>
#: Statuses in which the job waits on a person (a DNS record, a CA manager, an approver):
#: the live page asks less often.
WAITING_ON_PERSON = {CertStatus.AWAITING_DNS, CertStatus.AWAITING_CA, CertStatus.AWAITING_APPROVAL}
LIVE_EVERY = 1  # seconds between live updates while the job works
LIVE_EVERY_WAITING = 5  # ... and while it waits on a person
#: The reasons the revocation form offers: those ACME CAs accept (RFC 8555 §7.6 with
#: Let's Encrypt's list; the others are CRL-only), in plain words.
REVOCATION_CHOICES = (
    ("unspecified", "No particular reason"),
    ("keyCompromise", "The private key was exposed or lost (key compromise)"),
    ("superseded", "Replaced by a newer certificate (superseded)"),
    ("cessationOfOperation", "The site or service is no longer used (cessation of operation)"),
    ("affiliationChanged", "The owner or its name changed (affiliation changed)"),
)
#: Flash banners, and while each still applies: they clear once their action is done.
FLASH_WHILE_LIVE = {"dns-confirm", "check-ca", "renew", "deploy"}


def _detail_context(web: Web, session: DbSession, cert_id: str) -> dict[str, Any]:
    assert web.project is not None
    cert = certs.get_certificate(session, project_id=web.project.id, cert_id=cert_id)
    out = certs.to_out(session, cert)
    issuer = issuers.get_issuer(session, project_id=web.project.id, issuer_id=cert.issuer_id)
    older = web.request.query_params.get("older", "")[:200]
    events, older_cursor = audit.events_page(
        session,
        subject_type="certificate",
        subject_id=cert.id,
        limit=TIMELINE_PAGE,
        newest_first=True,
        cursor=older or None,
    )
    deployments = distribution.deployments_of(session, cert=cert, history=0).items
    deploying = any(d.latest is not None and d.latest.status in DEPLOY_BUSY for d in deployments)
    now = utcnow()
    live = out.status not in FINAL or deploying
    waiting = out.status in WAITING_ON_PERSON
    flash = web.request.query_params.get("flash", "")
    if flash in FLASH_WHILE_LIVE and not live:
        flash = ""
    return {
        "flash": flash,
        "live_every": (LIVE_EVERY_WAITING if waiting else LIVE_EVERY) if live else None,
        "live_url": _live_url(web, cert.id, flash),
        "waiting_on_person": waiting,
        "renewing": out.status not in FINAL and out.current is not None,
        "expires_in_days": (out.current.not_after - now).days
        if out.current and out.current.not_after
        else None,
        "versions": cert_versions.list_versions(session, cert),
        "authors": authorship(session, subject_type="certificate", ids=[cert.id]).get(cert.id),
        "cert": out,
        "issuer": issuer,
        "events": events,
        "timeline": timeline.groups(events),
        "older_cursor": older_cursor,
        "timeline_paged": bool(older),
        "step": cert.step,
        "live": live,
        "reasons": REVOCATION_CHOICES,
        "earlier_valid": lifecycle.still_valid_earlier_versions(session, cert, now=now),
        "revoked_now": _revoked_now(web),
        "has_manual_names": any(
            (cert.challenge_overrides.get(n) or {}).get("manual") for n in cert.names
        ),
        "deployments": deployments,
        "can_deploy": bool(deployments)
        and out.current is not None
        and not cert.csr_provided
        and out.status != CertStatus.REVOKED,
    }


def _live_url(web: Web, cert_id: str, flash: str) -> str:
    """The live part of the page with the query it was opened with (timeline page, the
    flash banner and what it names), so each update renders what the page shows."""
    assert web.project is not None
    keep = {k: web.request.query_params.get(k, "")[:200] for k in ("older", "revoked")}
    query = urlencode({k: v for k, v in {**keep, "flash": flash}.items() if v})
    return links.certificate(web.project.slug, cert_id) + "/live" + (f"?{query}" if query else "")


def _revoked_now(web: Web) -> list[int]:
    """The version numbers the revocation just made (``?revoked=2,1`` after the redirect)."""
    raw = web.request.query_params.get("revoked", "")
    return [int(n) for n in raw.split(",")[:100] if n.isdigit() and len(n) < 10]


@router.get(BASE + "/{cert_id}", response_class=HTMLResponse)
def detail(cert_id: str, web: InProjectWeb, session: DbSession) -> Response:
    return web.render("certificates/detail.html", **_detail_context(web, session, cert_id))


#: dns-persist-01 record states in words, for the detail page
PERSIST_LABELS = {
    PersistState.OK: "in place",
    PersistState.EXPIRES_SOON: "in place, expires soon",
    PersistState.MISSING: "not published yet",
    PersistState.WRONG_ISSUER: "names another CA",
    PersistState.WRONG_ACCOUNT: "names another ACME account",
    PersistState.NO_WILDCARD_POLICY: "lacks policy=wildcard",
    PersistState.EXPIRED: "expired",
    PersistState.MALFORMED: "malformed",
    PersistState.UNAVAILABLE: "not offered by the CA",
    PersistState.UNCHECKED: "could not be checked",
}


@router.get(BASE + "/{cert_id}/persist", response_class=HTMLResponse)
def persist_panel(cert_id: str, web: InProjectWeb, session: DbSession, state: State) -> Response:
    """The dns-persist-01 record of each manual-zone name (loaded after the page: it reads
    the CA's directory and asks the zone's servers). Nothing but one line when the
    issuer's CA does not offer the challenge."""
    assert web.project is not None
    cert = certs.get_certificate(session, project_id=web.project.id, cert_id=cert_id)
    try:
        reports = persist_records.certificate_persist_records(
            session, state.kek, cert=cert, now=utcnow()
        )
    except Conflict:  # the issuer's protocol has no dns-persist-01 at all
        reports = []
        offered = False
    else:
        offered = not any(r.status == PersistState.UNAVAILABLE for r in reports)
    return web.render(
        "certificates/_persist.html",
        cert_id=cert.id,
        reports=reports if offered else [],
        offered=offered,
        labels=PERSIST_LABELS,
    )


@router.get(BASE + "/{cert_id}/live", response_class=HTMLResponse)
def detail_live(cert_id: str, web: InProjectWeb, session: DbSession) -> Response:
    return web.render("certificates/_live.html", **_detail_context(web, session, cert_id))


#: The fields of the detail page's forms, by the names the services give them.
DETAIL_FIELDS = ("password", "reason", "confirm")


def _refused_on_page(
    web: Web, session: DbSession, cert_id: str, exc: CertAutoPilotError
) -> Response:
    """A detail-page action the service refused: the page again, with the refusal at the
    top (and next to its field for the password, reason and confirmation), in the UI's
    words with raw exception text behind "Details", instead of a page of its own."""
    session.rollback()
    errors = exc.errors if isinstance(exc, InvalidInput) else []
    fields = {f: m for f, m in errors if f in DETAIL_FIELDS}
    only_fields = bool(errors) and len(fields) == len(errors)
    message = "the form below says what to change." if only_fields else describe(exc)
    return web.render(
        "certificates/detail.html",
        status_code=exc.status,
        action_error={"title": exc.title, "message": message},
        action_errors=fields,
        **_detail_context(web, session, cert_id),
    )


def _on_page(action: Callable[..., Response]) -> Callable[..., Response]:
    """Wraps a detail-page POST view (``cert_id``, ``web``, ``session`` among its keyword
    arguments) so that a refusal is shown on the certificate's page."""

    @functools.wraps(action)
    def view(*args: Any, **kwargs: Any) -> Response:
        try:
            return action(*args, **kwargs)
        except (Unauthenticated, NotFound):
            raise
        except CertAutoPilotError as exc:
            return _refused_on_page(kwargs["web"], kwargs["session"], kwargs["cert_id"], exc)

    return view


def _back(web: Web, cert_id: str, flash: str = "", **query: str) -> Response:
    assert web.project is not None
    url = links.certificate(web.project.slug, cert_id)
    params = urlencode({"flash": flash, **query} if flash else query)
    return RedirectResponse(url + (f"?{params}" if params else ""), status_code=303)


@router.post(BASE + "/{cert_id}/dns-confirm")
@_on_page
def dns_confirm(
    cert_id: str, web: InProjectWeb, _: Form, session: DbSession, state: State
) -> Response:
    commands.confirm_dns(
        session, state.launcher, project_id=web.ctx.project.id, cert_id=cert_id, actor=web.ctx.actor
    )
    return _back(web, cert_id, "dns-confirm")


@router.post(BASE + "/{cert_id}/check-ca")
@_on_page
def check_ca(
    cert_id: str, web: InProjectWeb, _: Form, session: DbSession, state: State
) -> Response:
    commands.check_ca(
        session, state.launcher, project_id=web.ctx.project.id, cert_id=cert_id, actor=web.ctx.actor
    )
    return _back(web, cert_id, "check-ca")


@router.post(BASE + "/{cert_id}/renew")
@_on_page
def renew(cert_id: str, web: InProjectWeb, _: Form, session: DbSession, state: State) -> Response:
    cert = certs.get_certificate(session, project_id=web.ctx.project.id, cert_id=cert_id)
    certs.renew_certificate(
        session,
        cert=cert,
        actor=web.ctx.actor,
        launcher=state.launcher,
        now=utcnow(),
        limits=state.settings.rate_limits,
    )
    session.commit()
    return _back(web, cert_id, "renew")


@router.post(BASE + "/{cert_id}/revoke")
@_on_page
def revoke(
    cert_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """Runs in the threadpool: the CA is called, with no transaction open."""
    if form.get("confirm") != "yes":
        raise InvalidInput.field("confirm", "tick the confirmation box to revoke")
    reason = str(form.get("reason") or "unspecified")
    if reason not in dict(REVOCATION_CHOICES):
        raise InvalidInput.field("reason", "choose a reason from the list")
    done = commands.revoke_certificate(
        session,
        state.kek,
        project_id=web.ctx.project.id,
        cert_id=cert_id,
        reason=reason,
        actor=web.ctx.actor,
        all_versions=form.get("all_versions") == "yes",
    )
    revoked = ",".join(str(r.seq) for r in done.revoked)
    return _back(web, cert_id, "revoked", revoked=revoked)


@router.get(BASE + "/{cert_id}/download/{what}.pem")
def download(
    cert_id: str, what: str, web: InProjectWeb, session: DbSession, state: State
) -> Response:
    assert web.project is not None
    if what not in lifecycle.DOWNLOADS:
        raise InvalidInput.field("what", f"must be one of {', '.join(lifecycle.DOWNLOADS)}")
    cert = certs.get_certificate(session, project_id=web.project.id, cert_id=cert_id)
    pem = lifecycle.download(session, state.kek, cert=cert, what=what, actor=web.ctx.actor)
    session.commit()
    name = f"{cert.common_name.replace('*', 'wildcard')}-{what}.pem"
    return PlainTextResponse(
        pem,
        media_type="application/x-pem-file",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@router.post(BASE + "/{cert_id}/deploy", response_class=HTMLResponse)
@_on_page
def deploy(
    cert_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """Redeploy to every attached target, or (``dry_run``) check them and show what each
    would write. The dry run talks to the targets: a plain ``def``, it runs off the event
    loop."""
    dry = form.get("dry_run") == "1"
    cert = certs.get_certificate(session, project_id=web.ctx.project.id, cert_id=cert_id)
    out = distribution.request_deploy(
        session,
        state.kek,
        cert=cert,
        target_ids=None,
        preview=dry,
        actor=web.ctx.actor,
        launch=enqueuer(state.launcher.client),
        workflow_id=lambda dep: redeploy_workflow_id(dep.id),
        now=utcnow(),
    )
    session.commit()
    if not dry:
        return _back(web, cert_id, "deploy")
    return web.render(
        "certificates/detail.html", dry_run=out.results, **_detail_context(web, session, cert_id)
    )


@router.post(BASE + "/{cert_id}/download/certificate.p12")
@_on_page
def download_pkcs12(
    cert_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """PKCS#12 under the password typed in the form (admins; audited; never stored).
    PBKDF2 and the database read run in the threadpool, off the event loop."""
    try:
        body = Pkcs12In.model_validate({"password": form.get("password", "")})
    except ValidationError as exc:
        control = any(CONTROL_CHARACTERS in e["msg"] for e in exc.errors())
        message = (
            CONTROL_CHARACTERS
            if control
            else "choose a password of at least 8 characters for the file"
        )
        raise InvalidInput.field("password", message) from exc
    cert = certs.get_certificate(session, project_id=web.ctx.project.id, cert_id=cert_id)
    data = lifecycle.pkcs12_download(
        session,
        state.kek,
        cert=cert,
        password=body.password.get_secret_value(),
        actor=web.ctx.actor,
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
