"""Settings for project admins: issuers (ACME, AD CS: add, edit, test, disable, delete);
DNS zones are in settings_zones.

Every write calls the same domain services as the API, so the web UI and the API apply
the same rules (admin check, the CA check outside any transaction, audit). Secrets that
were typed are never sent back into the page. The write views are plain ``def``s: FastAPI
runs them in its threadpool, so the CA and DNS checks never block the event loop.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from certautopilot import links
from certautopilot.audit.authorship import authorship
from certautopilot.deps import DbSession, State, get_state
from certautopilot.errors import Conflict, InvalidInput, IssuerError, NotFound
from certautopilot.issuers import service as issuers
from certautopilot.issuers.adcs.schemas import (
    DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_CHECK_INTERVAL,
    TEMPLATE_PATTERN,
)
from certautopilot.issuers.models import Issuer
from certautopilot.issuers.schemas import IssuerIn, IssuerPatch, IssuerTestOut
from certautopilot.renewal import issuer_limits
from certautopilot.web.common import Form, InProjectWeb, Web, WebRoute
from certautopilot.web.views.forms import (
    Errors,
    add,
    from_invalid,
    kept,
    lines,
    optional,
    require_admin,
    text,
    validated,
    whole_lines,
)
from certautopilot.workflows import commands

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BASE = "/p/{project}/settings"
ISSUER_SECRETS = ("acme_eab_hmac_key", "adcs_password", "adcs_client_key_pem")
ADCS_SECRETS = ("password", "client_key_pem")  # of the AD CS edit form, after its prefix
DAY = 86_400
AUTH_MODES = (
    ("basic", "Basic (username + password)"),
    ("ntlm", "NTLM (username + password, with channel binding)"),
    ("kerberos", "Kerberos (the worker's ticket or keytab; username/password optional)"),
    ("client_cert", "Client certificate (certificate + key)"),
)


PRESET_CHOICES = (
    ("", "The service's settings (CERTAUTOPILOT_RENEWAL_*)"),
    *((p.value, issuer_limits.PRESETS[p].title) for p in issuer_limits.Preset),
)
LIMIT_FIELDS = (
    ("orders_per_account", "New orders per account", "300"),
    ("account_window_seconds", "... within (seconds)", "10800"),
    ("certs_per_domain", "Certificates per registered domain", "50"),
    ("domain_window_seconds", "... within (seconds)", "604800"),
    ("duplicate_certs", "Duplicate certificates (same identifiers)", "5"),
    ("duplicate_window_seconds", "... within (seconds)", "604800"),
)
ARI_CHOICES = {"": None, "yes": True, "no": False}


@router.get(BASE, response_class=HTMLResponse)
def settings_home(web: InProjectWeb) -> Response:
    require_admin(web, "Opening the project settings")
    assert web.project is not None
    return RedirectResponse(links.settings(web.project.slug, "issuers"), status_code=303)


# -- issuers ------------------------------------------------------------------------------
def _issuers_page(
    web: Web,
    session: DbSession,
    *,
    kind: str = "",
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
    secret_dropped: bool = False,
    status_code: int = 200,
    editing: str = "",
    tested: tuple[str, IssuerTestOut] | None = None,
    problem: str = "",
) -> Response:
    assert web.project is not None
    limits = get_state(web.request).settings.rate_limits
    rows = issuers.list_issuers(session, project_id=web.project.id)
    items = [issuers.to_out(i, default_limits=limits) for i in rows]
    return web.render(
        "settings/issuers.html",
        status_code=status_code,
        authors=authorship(session, subject_type="issuer", ids=[i.id for i in rows]),
        tab="issuers",
        items=items,
        kind=kind,
        form=form or {},
        errors=errors or {},
        secret_dropped=secret_dropped,
        auth_modes=AUTH_MODES,
        presets=PRESET_CHOICES,
        limit_fields=LIMIT_FIELDS,
        suggested={
            i.id: issuer_limits.preset_for_directory(i.acme.directory_url) for i in items if i.acme
        },
        stored={i.id: _adcs_stored(i) for i in rows if i.kind == "adcs"},
        editing=editing,
        tested=tested,
        problem=problem,
        created=web.request.query_params.get("created", ""),
        saved=web.request.query_params.get("saved", ""),
        deleted=web.request.query_params.get("deleted", ""),
        switched_on=web.request.query_params.get("enabled", ""),
        switched_off=web.request.query_params.get("disabled", ""),
    )


def _days(seconds: int) -> str:
    """Seconds as days for the form: ``30`` for 30 days, ``0.5`` for 12 hours."""
    return f"{seconds / DAY:.6f}".rstrip("0").rstrip(".")


def _adcs_stored(issuer: Issuer) -> dict[str, str]:
    """An AD CS issuer's edit form filled from its stored settings: never its password or
    client key (those inputs stay blank: blank keeps the stored secret)."""
    cfg, p = issuer.config, f"edit_{issuer.id}_"
    return {
        p + "url": cfg["url"],
        p + "templates": "\n".join(cfg["templates"]),
        p + "auth": cfg["auth"],
        p + "username": cfg.get("username") or "",
        p + "client_cert_pem": cfg.get("client_cert_pem") or "",
        p + "ca_bundle_pem": cfg.get("ca_bundle_pem") or "",
        p + "check_interval_seconds": str(cfg["check_interval_seconds"]),
        p + "approval_timeout_days": _days(cfg["approval_timeout_seconds"]),
    }


@router.get(BASE + "/issuers", response_class=HTMLResponse)
def issuers_page(web: InProjectWeb, session: DbSession) -> Response:
    require_admin(web, "Managing issuers")
    return _issuers_page(web, session)


def _int(form: dict[str, Any], key: str, errors: Errors, *, scale: int = 1) -> int | None:
    value = text(form, key)
    if not value:
        return None
    try:
        return int(float(value) * scale)
    except (ValueError, OverflowError):  # "abc", "nan", "1e400"
        add(errors, key, "must be a whole number")
        return None


def _limits_body(form: dict[str, Any], p: str, errors: Errors) -> dict[str, Any] | None:
    """The ``rate_limits`` object of the form's ``{p}rl_*`` fields; None when none is set
    (the service settings)."""
    body: dict[str, Any] = {}
    if text(form, p + "rl_preset"):
        body["preset"] = text(form, p + "rl_preset")
    for name, _, _ in LIMIT_FIELDS:
        value = _int(form, p + "rl_" + name, errors)
        if value is not None:
            body[name] = value
    ari = text(form, p + "rl_ari_renewals_exempt")
    if ari not in ARI_CHOICES:
        add(errors, p + "rl_ari_renewals_exempt", "choose yes, no or the preset's")
    elif ARI_CHOICES[ari] is not None:
        body["ari_renewals_exempt"] = ARI_CHOICES[ari]
    return body or None


def _issuer_body(kind: str, form: dict[str, Any], errors: Errors) -> dict[str, Any]:
    """The API body the form describes (the same JSON a script would POST)."""
    p = kind + "_"
    body: dict[str, Any] = {"name": text(form, p + "name"), "kind": kind}
    if kind == "acme":
        body["acme"] = {
            "directory_url": text(form, p + "directory_url"),
            "contact_email": optional(form, p + "contact_email"),
            "terms_agreed": form.get(p + "terms_agreed") == "on",
            "eab_kid": optional(form, p + "eab_kid"),
            "eab_hmac_key": optional(form, p + "eab_hmac_key"),
            "ca_bundle_pem": optional(form, p + "ca_bundle_pem"),
            "rate_limits": _limits_body(form, p, errors),
            "caa_identity": optional(form, p + "caa_identity"),
        }
        return body
    settings: dict[str, Any] = {
        "url": text(form, p + "url"),
        "templates": lines(text(form, p + "templates")),
        "auth": text(form, p + "auth"),
        "ca_bundle_pem": optional(form, p + "ca_bundle_pem"),
    }
    if settings["auth"] == "client_cert":
        settings["client_cert_pem"] = optional(form, p + "client_cert_pem")
        settings["client_key_pem"] = optional(form, p + "client_key_pem")
    else:
        settings["username"] = optional(form, p + "username")
        settings["password"] = optional(form, p + "password")
    interval = _int(form, p + "check_interval_seconds", errors)
    if interval is not None:
        settings["check_interval_seconds"] = interval
    timeout = _int(form, p + "approval_timeout_days", errors, scale=86_400)
    if timeout is not None:
        settings["approval_timeout_seconds"] = timeout
    body["adcs"] = settings
    return body


def _issuer_field(kind: str, form: dict[str, Any], p: str = "") -> Any:
    """Maps an API field name (``acme.eab_kid``, ``ca_bundle_pem``...) to the form's input,
    whose names start with ``p`` (``acme_``, ``adcs_``; ``edit_<id>_`` on an edit form)."""
    p = p or f"{kind}_"

    def field_of(name: str) -> str:
        head, _, rest = name.partition(".")
        if head in ("acme", "adcs"):
            name = rest.split("[", 1)[0] or "form"
        name = name.replace("rate_limits.", "rl_").replace("rate_limits", "rl_preset")
        name = {
            "approval_timeout_seconds": "approval_timeout_days",
            "body": "form",
            "kind": "form",
            "": "form",
        }.get(name, name.split("[", 1)[0])
        if kind == "adcs" and name == "password" and text(form, p + "auth") == "client_cert":
            name = "client_cert_pem"
        return p + name

    return field_of


@router.post(BASE + "/issuers/{kind}", response_class=HTMLResponse)
def create_issuer(
    kind: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    require_admin(web, "Adding an issuer")
    if kind not in ("acme", "adcs"):
        raise NotFound(f"no issuer kind {kind!r}")
    field_of = _issuer_field(kind, form)
    errors: Errors = {}
    body = _issuer_body(kind, form, errors)
    model = validated(IssuerIn, body, field_of, errors)
    if model is not None and not errors:
        try:
            # Checks at the CA with no transaction open, then stores; rolls back on error.
            commands.create_issuer(
                session, state.kek, project_id=web.ctx.project.id, body=model, actor=web.ctx.actor
            )
        except InvalidInput as exc:
            errors = from_invalid(exc, field_of)
            for f in list(errors):
                if f == f"{kind}_form" and kind == "acme":  # the CA refused the account
                    tls = [m for m in errors[f] if "TLS verification" in m]
                    target = "acme_ca_bundle_pem" if tls else "acme_directory_url"
                    if tls:
                        add(
                            errors,
                            target,
                            "The CA's TLS certificate is not trusted: paste the CA "
                            "certificate(s) that sign it here.",
                        )
                    for m in errors.pop(f):
                        add(errors, target, m)
        except Conflict as exc:
            add(errors, f"{kind}_name", str(exc))
        except IssuerError as exc:  # the CA is unreachable or failing: worth trying later
            target = "acme_directory_url" if kind == "acme" else "adcs_url"
            add(errors, target, f"The CA could not be reached or failed: {exc}")
        else:
            assert web.project is not None
            return RedirectResponse(
                links.settings(web.project.slug, "issuers", created=model.name),
                status_code=303,
            )
    values, dropped = kept(form, ISSUER_SECRETS)
    return _issuers_page(
        web,
        session,
        kind=kind,
        form=values,
        errors=errors,
        secret_dropped=dropped,
        status_code=422,
    )


@router.post(BASE + "/issuers/{issuer_id}/acme", response_class=HTMLResponse)
def edit_acme_issuer(
    issuer_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """An ACME issuer's rate limits and CAA identity (the same edit as ``PATCH``)."""
    require_admin(web, "Editing an issuer")
    assert web.project is not None
    p = f"edit_{issuer_id}_"
    errors: Errors = {}
    body = {
        "acme": {
            "rate_limits": _limits_body(form, p, errors),
            "caa_identity": optional(form, p + "caa_identity"),
        }
    }

    def field_of(name: str) -> str:
        name = name.removeprefix("acme.").replace("rate_limits.", "rl_")
        return p + name.replace("rate_limits", "rl_preset")

    model = validated(IssuerPatch, body, field_of, errors)
    if model is not None and not errors:
        try:
            commands.update_issuer(
                session,
                state.kek,
                project_id=web.ctx.project.id,
                issuer_id=issuer_id,
                patch=model,
                actor=web.ctx.actor,
            )
        except Conflict as exc:
            add(errors, p + "form", str(exc))
        else:
            return RedirectResponse(
                links.settings(web.project.slug, "issuers", saved=issuer_id), status_code=303
            )
    return _issuers_page(
        web, session, form=dict(form), errors=errors, status_code=422, editing=issuer_id
    )


def _adcs_patch(
    stored: dict[str, Any], form: dict[str, Any], p: str, errors: Errors
) -> dict[str, Any]:
    """The ``adcs`` object of a ``PATCH`` for what the edit form changed. A blank password
    or client key keeps the stored one, as the API does: only while the authentication and
    the username (or the certificate) stay the same; otherwise it must be typed, and a
    missing credential is said next to its field in the form's words."""
    out: dict[str, Any] = {}

    def changed(key: str, value: Any, before: Any) -> bool:
        differs = bool(value != before)
        if differs:
            out[key] = value
        return differs

    url = text(form, p + "url")
    changed("url", url, stored["url"])
    templates = whole_lines(text(form, p + "templates"))
    if not templates:
        add(errors, p + "templates", "Name at least one template.")
    for name in templates:
        if not re.match(TEMPLATE_PATTERN, name):
            add(
                errors,
                p + "templates",
                f"Template {name!r} must be 1-100 characters without colons, semicolons, "
                "quotes or angle brackets.",
            )
    changed("templates", templates, stored["templates"])
    auth = text(form, p + "auth")
    same_auth = not changed("auth", auth, stored["auth"])
    if auth == "client_cert":
        cert = _pem(text(form, p + "client_cert_pem"))
        new_cert = changed("client_cert_pem", cert, _pem(stored.get("client_cert_pem")))
        key = optional(form, p + "client_key_pem")
        if key:
            out["client_key_pem"] = key
        if not cert:
            add(errors, p + "client_cert_pem", "Paste the client certificate (PEM).")
        elif not key and (new_cert or not same_auth or not stored.get("client_key_secret_id")):
            add(
                errors,
                p + "client_key_pem",
                "Paste the private key of this certificate: the stored key is kept only "
                "for the same certificate.",
            )
    else:
        username = optional(form, p + "username")
        new_user = changed("username", username, stored.get("username"))
        password = optional(form, p + "password")
        if password:
            out["password"] = password
        kept_password = same_auth and not new_user and stored.get("password_secret_id")
        if auth in ("basic", "ntlm"):
            if not username:
                add(errors, p + "username", "Basic and NTLM sign in with a username.")
            elif not password and not kept_password:
                add(
                    errors,
                    p + "password",
                    "Type the password: the stored one is kept only for the same username "
                    "and authentication.",
                )
        elif password and not username:  # Kerberos: both optional, but not a lone password
            add(errors, p + "username", "A Kerberos password needs its username (principal).")
    bundle = _pem(text(form, p + "ca_bundle_pem"))
    changed("ca_bundle_pem", bundle, _pem(stored.get("ca_bundle_pem")))
    interval = _int(form, p + "check_interval_seconds", errors)
    changed(
        "check_interval_seconds",
        DEFAULT_CHECK_INTERVAL if interval is None else interval,
        stored["check_interval_seconds"],
    )
    timeout = _int(form, p + "approval_timeout_days", errors, scale=DAY)
    changed(
        "approval_timeout_seconds",
        DEFAULT_APPROVAL_TIMEOUT if timeout is None else timeout,
        stored["approval_timeout_seconds"],
    )
    return out


def _pem(value: Any) -> str | None:
    """A PEM as the edit form compares it: a browser sends a textarea's lines ending in
    CRLF, so a stored PEM it was filled with comes back with other line ends."""
    return str(value or "").replace("\r\n", "\n").strip() or None


@router.post(BASE + "/issuers/{issuer_id}/adcs", response_class=HTMLResponse)
def edit_adcs_issuer(
    issuer_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """An AD CS issuer's settings (the same edit as ``PATCH`` with ``adcs``): checked at the
    CA before anything is stored; the API's ``issuer.updated`` audit event names the fields
    that changed."""
    require_admin(web, "Editing an issuer")
    assert web.project is not None
    issuer = issuers.get_issuer(session, project_id=web.ctx.project.id, issuer_id=issuer_id)
    if issuer.kind != "adcs":
        raise NotFound(f"issuer {issuer.name!r} is not an AD CS issuer")
    p = f"edit_{issuer_id}_"
    field_of = _issuer_field("adcs", form, p)
    errors: Errors = {}
    body = {"adcs": _adcs_patch(dict(issuer.config), form, p, errors)}
    model = validated(IssuerPatch, body, field_of, errors)
    if model is not None and not errors:
        try:
            # Checks the edited settings at the CA with no transaction open, then stores.
            commands.update_issuer(
                session,
                state.kek,
                project_id=web.ctx.project.id,
                issuer_id=issuer_id,
                patch=model,
                actor=web.ctx.actor,
            )
        except InvalidInput as exc:
            errors = from_invalid(exc, field_of)
        except Conflict as exc:
            add(errors, p + "form", str(exc))
        except IssuerError as exc:
            add(errors, p + "url", f"The CA could not be reached or failed: {exc}")
        else:
            return RedirectResponse(
                links.settings(web.project.slug, "issuers", saved=issuer_id), status_code=303
            )
    values, dropped = kept(form, tuple(p + s for s in ADCS_SECRETS))
    return _issuers_page(
        web,
        session,
        form=values,
        errors=errors,
        secret_dropped=dropped,
        status_code=422,
        editing=issuer_id,
    )


@router.post(BASE + "/issuers/{issuer_id}/test", response_class=HTMLResponse)
def test_issuer(
    issuer_id: str, web: InProjectWeb, _: Form, session: DbSession, state: State
) -> Response:
    """The Test button: the CA is reached step by step with the stored settings; nothing
    is ordered or written."""
    require_admin(web, "Testing an issuer")
    name = issuers.get_issuer(session, project_id=web.ctx.project.id, issuer_id=issuer_id).name
    result = commands.test_issuer(
        session, state.kek, project_id=web.ctx.project.id, issuer_id=issuer_id, actor=web.ctx.actor
    )
    return _issuers_page(web, session, tested=(name, result))


@router.post(BASE + "/issuers/{issuer_id}/enabled", response_class=HTMLResponse)
def switch_issuer(
    issuer_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """Enable or Disable: a disabled issuer keeps its account and settings but takes no new
    request, renewal or fallback."""
    require_admin(web, "Enabling or disabling an issuer")
    assert web.project is not None
    enabled = text(form, "enabled") == "true"
    issuer = commands.update_issuer(
        session,
        state.kek,
        project_id=web.ctx.project.id,
        issuer_id=issuer_id,
        patch=IssuerPatch(enabled=enabled),
        actor=web.ctx.actor,
    )
    word = "enabled" if enabled else "disabled"
    return RedirectResponse(
        links.settings(web.project.slug, "issuers", **{word: issuer.name}),
        status_code=303,
    )


@router.post(BASE + "/issuers/{issuer_id}/delete", response_class=HTMLResponse)
def delete_issuer(issuer_id: str, web: InProjectWeb, _: Form, session: DbSession) -> Response:
    """Delete: refused, with the reason on the page, while a certificate or the policy's
    fallback list uses the issuer."""
    require_admin(web, "Deleting an issuer")
    assert web.project is not None
    name = issuers.get_issuer(session, project_id=web.ctx.project.id, issuer_id=issuer_id).name
    try:
        commands.delete_issuer(
            session, project_id=web.ctx.project.id, issuer_id=issuer_id, actor=web.ctx.actor
        )
    except Conflict as exc:
        return _issuers_page(
            web, session, problem=f"Issuer {name} was not deleted: {exc}", status_code=409
        )
    return RedirectResponse(
        links.settings(web.project.slug, "issuers", deleted=name), status_code=303
    )
