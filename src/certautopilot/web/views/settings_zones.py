"""Settings for project admins: DNS zones (add, edit, disable or enable, delete, test).

The zone form is rendered from the DNS provider registry (the data of
``GET /api/v1/dns-providers``): a provider select, then the chosen provider's fields
(required ones marked, secrets as password inputs that are never filled back in, the
provider's help text). rfc2136 keeps its own labelled block (server, port, TSIG key).
Every write calls the same services as the API (the provider check runs outside any
transaction). Views are plain ``def``s: FastAPI runs them in its threadpool, so DNS and
provider calls never block the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot import links
from certautopilot.audit.authorship import authorship
from certautopilot.certificates import caa_check
from certautopilot.deps import DbSession, State
from certautopilot.dns import service as dns
from certautopilot.dns.schemas import ZoneCaaOut, ZoneIn, ZoneOut, ZonePatch, ZoneTestOut
from certautopilot.errors import Conflict, InvalidInput
from certautopilot.issuers import service as issuers
from certautopilot.web.common import Form, InProjectWeb, Web, WebRoute
from certautopilot.web.views.forms import (
    Errors,
    add,
    from_invalid,
    lines,
    require_admin,
    text,
    validated,
)
from certautopilot.workflows import commands

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BASE = "/p/{project}/settings/zones"
RFC2136 = "rfc2136"
RFC_FIELDS = ("server", "port", "tsig_name", "tsig_algorithm", "tsig_secret")
TSIG_ALGORITHMS = (
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
    "hmac-sha224",
    "hmac-sha1",
    "hmac-md5",
)
PREFIX = "s_"  # form keys of a provider's settings: s_<field>


@dataclass(frozen=True)
class FormField:
    key: str
    name: str
    required: bool
    secret: bool
    boolean: bool
    help: str


@dataclass(frozen=True)
class ProviderChoice:
    name: str
    title: str
    tested: bool
    fields: tuple[FormField, ...]


def _choices() -> list[ProviderChoice]:
    out = []
    for plugin in dns.provider_plugins():
        described = dns.describe_provider(plugin)
        model_fields = plugin.config_model.model_fields
        fields = tuple(
            FormField(
                key=PREFIX + f.name,
                name=f.name,
                required=f.required,
                secret=f.secret,
                boolean=model_fields[f.name].annotation is bool,
                help=f.help,
            )
            for f in described.fields
        )
        out.append(ProviderChoice(plugin.name, plugin.title, described.tested, fields))
    return out


def _choice(name: str) -> ProviderChoice:
    choices = {c.name: c for c in _choices()}
    return choices.get(name) or choices[RFC2136]


def _field_of(name: str) -> str:
    """An API error field -> the form key its message is shown under."""
    head, _, rest = name.partition(".")
    if head == RFC2136:
        return rest or "provider"
    if head == "settings":
        sub = rest.split(".", 1)[0]
        return PREFIX + sub if sub else "settings"
    name = name.split("[", 1)[0]
    return "form" if name in ("body", "") else name


def _int(form: dict[str, Any], key: str, errors: Errors) -> int | None:
    value = text(form, key)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        add(errors, key, "must be a whole number")
        return None


def _rfc_settings(form: dict[str, Any], errors: Errors, *, editing: bool) -> dict[str, Any]:
    port = _int(form, "port", errors)
    settings: dict[str, Any] = {
        "server": text(form, "server"),
        "port": port if port is not None else 53,
        "tsig_name": text(form, "tsig_name"),
        "tsig_algorithm": text(form, "tsig_algorithm") or "hmac-sha256",
    }
    if text(form, "tsig_secret") or not editing:
        settings["tsig_secret"] = text(form, "tsig_secret")
    return settings


def _provider_settings(
    choice: ProviderChoice, form: dict[str, Any], *, editing: bool
) -> dict[str, Any]:
    """The typed settings; a blank secret on an edit keeps the stored one, a blank other
    field on an edit clears it."""
    settings: dict[str, Any] = {}
    for f in choice.fields:
        if f.boolean:
            settings[f.name] = bool(form.get(f.key))
            continue
        value = text(form, f.key)
        if value:
            settings[f.name] = value
        elif editing and not f.secret:
            settings[f.name] = None
    return settings


def _secret_keys(choice: ProviderChoice) -> set[str]:
    return {f.key for f in choice.fields if f.secret} | {"tsig_secret"}


def _kept(form: dict[str, Any], choice: ProviderChoice) -> tuple[dict[str, Any], bool]:
    secret = _secret_keys(choice)
    values = {k: v for k, v in form.items() if k != "csrf" and k not in secret}
    return values, any(text(form, k) for k in secret)


def _form_of(zone: ZoneOut) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": zone.name,
        "provider": zone.provider,
        "nameservers": "\n".join(zone.nameservers),
        "propagation_timeout_seconds": str(zone.propagation_timeout_seconds),
    }
    for key, value in zone.settings.items():
        if value is None:
            continue
        if zone.provider == RFC2136 and key in RFC_FIELDS:
            values[key] = str(value)
        values[PREFIX + key] = "on" if value is True else ("" if value is False else str(value))
    return values


def _page(
    web: Web,
    session: DbSession,
    *,
    provider: str,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
    secret_dropped: bool = False,
    editing: ZoneOut | None = None,
    tested: tuple[ZoneOut, ZoneTestOut] | None = None,
    caa: ZoneCaaOut | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    assert web.project is not None
    items = [dns.to_out(z) for z in dns.list_zones(session, project_id=web.project.id)]
    choices = _choices()
    chosen = _choice(provider)
    defaults = {"provider": chosen.name, "port": "53", "tsig_algorithm": "hmac-sha256"}
    return web.render(
        "settings/zones.html",
        status_code=status_code,
        tab="zones",
        items=items,
        authors=authorship(session, subject_type="zone", ids=[z.id for z in items]),
        titles={c.name: c.title for c in choices},
        choices=choices,
        chosen=chosen,
        form={**defaults, **(form or {})},
        errors=errors or {},
        secret_dropped=secret_dropped,
        algorithms=TSIG_ALGORITHMS,
        editing=editing,
        tested=tested,
        caa=caa,
        problem=problem,
        created=web.request.query_params.get("created", ""),
        saved=web.request.query_params.get("saved", ""),
        deleted=web.request.query_params.get("deleted", ""),
        switched_on=web.request.query_params.get("enabled", ""),
        switched_off=web.request.query_params.get("disabled", ""),
    )


@router.get(BASE, response_class=HTMLResponse)
def zones_page(web: InProjectWeb, session: DbSession, provider: str = RFC2136) -> Response:
    require_admin(web, "Managing DNS zones")
    return _page(web, session, provider=provider)


@router.post(BASE, response_class=HTMLResponse)
def create_zone(web: InProjectWeb, form: Form, session: DbSession, state: State) -> Response:
    require_admin(web, "Adding a DNS zone")
    errors: Errors = {}
    choice = _choice(text(form, "provider"))
    body: dict[str, Any] = {"name": text(form, "name"), "provider": text(form, "provider")}
    nameservers = lines(text(form, "nameservers"))
    if nameservers:
        body["nameservers"] = nameservers
    timeout = _int(form, "propagation_timeout_seconds", errors)
    if timeout is not None:
        body["propagation_timeout_seconds"] = timeout
    if choice.name == RFC2136:
        body["rfc2136"] = _rfc_settings(form, errors, editing=False)
    elif choice.fields:
        body["settings"] = _provider_settings(choice, form, editing=False)
    model = validated(ZoneIn, body, _field_of, errors)
    if model is not None and not errors:
        try:
            commands.create_zone(
                session, state.kek, project_id=web.ctx.project.id, body=model, actor=web.ctx.actor
            )
        except InvalidInput as exc:
            errors = from_invalid(exc, _field_of)
        except Conflict as exc:
            add(errors, "name", str(exc))
        else:
            assert web.project is not None
            return RedirectResponse(
                links.settings(web.project.slug, "zones", created=model.name), status_code=303
            )
    values, dropped = _kept(form, choice)
    return _page(
        web,
        session,
        provider=choice.name,
        form=values,
        errors=errors,
        secret_dropped=dropped,
        status_code=422,
    )


def _zone(web: Web, session: DbSession, zone_id: str) -> ZoneOut:
    assert web.project is not None
    return dns.to_out(dns.get_zone(session, project_id=web.project.id, zone_id=zone_id))


@router.get(BASE + "/{zone_id}", response_class=HTMLResponse)
def edit_page(zone_id: str, web: InProjectWeb, session: DbSession) -> Response:
    require_admin(web, "Editing a DNS zone")
    zone = _zone(web, session, zone_id)
    return _page(web, session, provider=zone.provider, form=_form_of(zone), editing=zone)


@router.post(BASE + "/{zone_id}", response_class=HTMLResponse)
def edit_zone(
    zone_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    require_admin(web, "Editing a DNS zone")
    zone = _zone(web, session, zone_id)
    choice = _choice(zone.provider)
    errors: Errors = {}
    body: dict[str, Any] = {"nameservers": lines(text(form, "nameservers"))}
    timeout = _int(form, "propagation_timeout_seconds", errors)
    if timeout is not None:
        body["propagation_timeout_seconds"] = timeout
    if choice.name == RFC2136:
        body["rfc2136"] = _rfc_settings(form, errors, editing=True)
    elif choice.fields:
        body["settings"] = _provider_settings(choice, form, editing=True)
    patch = validated(ZonePatch, body, _field_of, errors)
    if patch is not None and not errors:
        try:
            commands.update_zone(
                session,
                state.kek,
                project_id=web.ctx.project.id,
                zone_id=zone_id,
                patch=patch,
                actor=web.ctx.actor,
            )
        except InvalidInput as exc:
            errors = from_invalid(exc, _field_of)
        else:
            assert web.project is not None
            return RedirectResponse(
                links.settings(web.project.slug, "zones", saved=zone.name), status_code=303
            )
    values, dropped = _kept(form, choice)
    values.update(name=zone.name, provider=zone.provider)
    return _page(
        web,
        session,
        provider=zone.provider,
        form=values,
        errors=errors,
        secret_dropped=dropped,
        editing=zone,
        status_code=422,
    )


@router.post(BASE + "/{zone_id}/enabled", response_class=HTMLResponse)
def switch_zone(
    zone_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """Enable or Disable: a disabled zone keeps its settings and its certificates, but no
    record is written in it (new requests for its names are refused, renewals wait)."""
    require_admin(web, "Enabling or disabling a DNS zone")
    zone = _zone(web, session, zone_id)
    enabled = text(form, "enabled") == "true"
    commands.update_zone(
        session,
        state.kek,
        project_id=web.ctx.project.id,
        zone_id=zone_id,
        patch=ZonePatch(enabled=enabled),
        actor=web.ctx.actor,
    )
    assert web.project is not None
    word = "enabled" if enabled else "disabled"
    return RedirectResponse(
        links.settings(web.project.slug, "zones", **{word: zone.name}), status_code=303
    )


@router.post(BASE + "/{zone_id}/delete", response_class=HTMLResponse)
def delete_zone(zone_id: str, web: InProjectWeb, _: Form, session: DbSession) -> Response:
    require_admin(web, "Deleting a DNS zone")
    zone = _zone(web, session, zone_id)
    try:
        dns.delete_zone(
            session, project_id=web.ctx.project.id, zone_id=zone_id, actor=web.ctx.actor
        )
        session.commit()
    except Conflict as exc:
        session.rollback()
        return _page(
            web,
            session,
            provider=RFC2136,
            problem=f"Zone {zone.name} was not deleted: {exc}",
            status_code=409,
        )
    assert web.project is not None
    return RedirectResponse(
        links.settings(web.project.slug, "zones", deleted=zone.name), status_code=303
    )


@router.post(BASE + "/{zone_id}/test", response_class=HTMLResponse)
def test_zone(
    zone_id: str, web: InProjectWeb, _: Form, session: DbSession, state: State
) -> Response:
    require_admin(web, "Testing a DNS zone")
    zone = _zone(web, session, zone_id)
    probe = dns.prepare_test(session, state.kek, project_id=web.ctx.project.id, zone_id=zone_id)
    session.commit()  # the test is network I/O
    result = dns.run_zone_test(probe)
    return _page(web, session, provider=RFC2136, tested=(zone, result))


@router.get(BASE + "/{zone_id}/caa", response_class=HTMLResponse)
def zone_caa(zone_id: str, web: InProjectWeb, session: DbSession) -> Response:
    """The zone's CAA panel: the records that govern it, what they say about each ACME
    issuer of the project, and the records that would allow them (the service never
    writes CAA: a person adds them)."""
    require_admin(web, "Checking a zone's CAA records")
    assert web.project is not None
    zone = dns.get_zone(session, project_id=web.project.id, zone_id=zone_id)
    found = issuers.list_issuers(session, project_id=web.project.id)
    session.expunge_all()
    session.commit()  # the lookups are network I/O
    report = caa_check.zone_report(zone, found)
    return _page(web, session, provider=RFC2136, caa=report)
