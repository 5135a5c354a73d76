"""Settings for project admins: the project policy, and members with their roles.

Writes call the same domain services as the API (the same checks and audit); the write
views are plain ``def``s, run in FastAPI's threadpool, off the event loop.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from certautopilot import links
from certautopilot.auth import invitations
from certautopilot.auth import service as auth
from certautopilot.auth.models import ROLES
from certautopilot.clock import utcnow
from certautopilot.deps import DbSession, State
from certautopilot.errors import Conflict, InvalidInput, NotFound
from certautopilot.issuers import service as issuers
from certautopilot.policy import service as policy
from certautopilot.policy.schemas import PolicyRules
from certautopilot.projects import service as projects
from certautopilot.projects.schemas import MemberIn
from certautopilot.web.common import Form, InProjectWeb, Web, WebRoute
from certautopilot.web.views.certificates import KEY_TYPES
from certautopilot.web.views.forms import (
    Errors,
    add,
    from_invalid,
    from_validation,
    lines,
    listed,
    require_admin,
    text,
    validated,
    whole_lines,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BASE = "/p/{project}/settings"
BLANK_CN_ROWS = 2
ROLE_HELP = {
    "admin": "everything, including these settings, policy overrides and key downloads",
    "approver": "approves or rejects other people's requests, and requests certificates",
    "operator": "requests, renews and revokes certificates",
    "viewer": "reads certificates and their timelines",
}


# -- policy -------------------------------------------------------------------------------
def _view_of_rules(rules: PolicyRules) -> dict[str, Any]:
    return {
        "allowed_issuers": list(rules.allowed_issuers or []),
        "denied_acme_directories": "\n".join(rules.denied_acme_directories),
        "allowed_key_types": list(rules.allowed_key_types or []),
        "allowed_acme_profiles": "\n".join(rules.allowed_acme_profiles or []),
        "min_rsa_bits": str(rules.min_rsa_bits or ""),
        "min_ecdsa_bits": str(rules.min_ecdsa_bits or ""),
        "required_san_suffixes": "\n".join(rules.required_san_suffixes),
        "allowed_name_suffixes": "\n".join(rules.allowed_name_suffixes or []),
        "cn_rows": [(p.pattern, p.kind) for p in rules.forbidden_cn_patterns],
        "mandatory_auto_renew": rules.mandatory_auto_renew,
        "approval_required": rules.approval_required,
        "request_expiry_days": str(rules.request_expiry_days),
    }


def _cn_rows(form: dict[str, Any]) -> list[tuple[str, str]]:
    patterns = listed(form, "cn_pattern[]")
    kinds = listed(form, "cn_kind[]")
    return [(p.strip(), kinds[i] if i < len(kinds) else "glob") for i, p in enumerate(patterns)]


def _view_of_form(form: dict[str, Any]) -> dict[str, Any]:
    return {
        "allowed_issuers": listed(form, "allowed_issuers[]"),
        "denied_acme_directories": text(form, "denied_acme_directories"),
        "allowed_key_types": listed(form, "allowed_key_types[]"),
        "allowed_acme_profiles": text(form, "allowed_acme_profiles"),
        "min_rsa_bits": text(form, "min_rsa_bits"),
        "min_ecdsa_bits": text(form, "min_ecdsa_bits"),
        "required_san_suffixes": text(form, "required_san_suffixes"),
        "allowed_name_suffixes": text(form, "allowed_name_suffixes"),
        "cn_rows": [r for r in _cn_rows(form) if r[0]],
        "mandatory_auto_renew": form.get("mandatory_auto_renew") == "on",
        "approval_required": form.get("approval_required") == "on",
        "request_expiry_days": text(form, "request_expiry_days"),
    }


def _policy_page(
    web: Web,
    session: DbSession,
    view: dict[str, Any],
    *,
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    assert web.project is not None
    row = policy.get_policy(session, web.project.id)
    project_issuers = issuers.list_issuers(session, project_id=web.project.id)
    known = {i.id for i in project_issuers} | {i.name for i in project_issuers}
    chosen = set(view["allowed_issuers"])
    issuer_options = [
        (i.id, f"{i.name} ({i.kind.upper()})", i.id in chosen or i.name in chosen)
        for i in project_issuers
    ] + [(v, f"{v} (no such issuer in this project)", True) for v in chosen - known]
    view = {**view, "cn_rows": list(view["cn_rows"]) + [("", "glob")] * BLANK_CN_ROWS}
    return web.render(
        "settings/policy.html",
        status_code=status_code,
        tab="policy",
        view=view,
        errors=errors or {},
        issuer_options=issuer_options,
        key_types=KEY_TYPES,
        updated_by=row.updated_by if row else None,
        updated_at=row.updated_at if row else None,
        saved=web.request.query_params.get("saved") == "1",
    )


@router.get(BASE + "/policy", response_class=HTMLResponse)
def policy_page(web: InProjectWeb, session: DbSession) -> Response:
    require_admin(web, "Reading the project policy")
    assert web.project is not None
    return _policy_page(web, session, _view_of_rules(policy.rules_of(session, web.project.id)))


def _bits(value: str, key: str, errors: Errors) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        add(errors, key, "choose a size from the list")
        return None
    return int(value)


@router.post(BASE + "/policy", response_class=HTMLResponse)
def save_policy(web: InProjectWeb, form: Form, session: DbSession) -> Response:
    require_admin(web, "Changing the project policy")
    errors: Errors = {}
    rows = _cn_rows(form)
    filled = [i for i, (p, _) in enumerate(rows) if p]  # API index -> row on the page
    expiry = text(form, "request_expiry_days")
    body: dict[str, Any] = {
        "allowed_issuers": listed(form, "allowed_issuers[]") or None,
        "denied_acme_directories": whole_lines(text(form, "denied_acme_directories")),
        "allowed_key_types": listed(form, "allowed_key_types[]") or None,
        "allowed_acme_profiles": lines(text(form, "allowed_acme_profiles")) or None,
        "min_rsa_bits": _bits(text(form, "min_rsa_bits"), "min_rsa_bits", errors),
        "min_ecdsa_bits": _bits(text(form, "min_ecdsa_bits"), "min_ecdsa_bits", errors),
        "required_san_suffixes": lines(text(form, "required_san_suffixes")),
        "allowed_name_suffixes": lines(text(form, "allowed_name_suffixes")) or None,
        "forbidden_cn_patterns": [{"pattern": rows[i][0], "kind": rows[i][1]} for i in filled],
        "mandatory_auto_renew": form.get("mandatory_auto_renew") == "on",
        "approval_required": form.get("approval_required") == "on",
    }
    if expiry:
        if expiry.isdigit():
            body["request_expiry_days"] = int(expiry)
        else:
            add(errors, "request_expiry_days", "must be a whole number of days")

    def field_of(name: str) -> str:
        match = re.match(r"forbidden_cn_patterns\[(\d+)\]", name)
        if match:
            # The page shows the filled rows again, in order: the API's index is the row's.
            return f"cn_row_{match.group(1)}"
        return re.split(r"[.\[]", name, maxsplit=1)[0] or "form"

    model = validated(PolicyRules, body, field_of, errors)
    if model is not None and not errors:
        try:
            policy.put_policy(
                session, project_id=web.ctx.project.id, rules=model, actor=web.ctx.actor
            )
            session.commit()
        except InvalidInput as exc:
            session.rollback()
            errors = from_invalid(exc, field_of)
        else:
            assert web.project is not None
            return RedirectResponse(
                links.settings(web.project.slug, "policy", saved="1"), status_code=303
            )
    return _policy_page(web, session, _view_of_form(form), errors=errors, status_code=422)


# -- members ------------------------------------------------------------------------------
def _members_page(
    web: Web,
    session: DbSession,
    *,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
    invited: tuple[str, str] | None = None,
    saved: str = "",
) -> Response:
    assert web.project is not None
    members = auth.members_of(session, project_id=web.project.id)
    return web.render(
        "settings/members.html",
        status_code=status_code,
        tab="members",
        members=members,
        pending=invitations.pending(session, user_ids=[u.id for u, _ in members], now=utcnow()),
        invited=invited,
        roles=list(reversed(ROLES)),
        role_help=ROLE_HELP,
        form=form or {"role": "operator"},
        errors=errors or {},
        saved=saved or web.request.query_params.get("saved", ""),
        removed=web.request.query_params.get("removed", ""),
    )


@router.get(BASE + "/members", response_class=HTMLResponse)
def members_page(web: InProjectWeb, session: DbSession) -> Response:
    require_admin(web, "Managing members")
    return _members_page(web, session)


def _back(web: Web, **query: str) -> Response:
    assert web.project is not None
    return RedirectResponse(links.settings(web.project.slug, "members", **query), status_code=303)


def _invited(web: Web, session: DbSession, state: State, user: Any, *, saved: str = "") -> Response:
    """The members page with a new one-time sign-in link for ``user``, shown once (on the
    page, not in a redirect's URL: the link is a secret)."""
    token = invitations.create(session, user=user, actor=web.ctx.actor.email, now=utcnow())
    session.commit()
    link = links.invitation(token, base=state.settings.public_url)
    response = _members_page(web, session, invited=(user.email, link), saved=saved)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(BASE + "/members/invite", response_class=HTMLResponse)
def invite_member(web: InProjectWeb, form: Form, session: DbSession, state: State) -> Response:
    """A new sign-in link for a member who has no web password yet."""
    require_admin(web, "Managing members")
    email = auth.normalize_email(text(form, "email"))
    member = next(
        (u for u, _ in auth.members_of(session, project_id=web.ctx.project.id) if u.email == email),
        None,
    )
    if member is None:
        raise NotFound(f"{email} is not a member of this project")
    if member.password_hash:
        errors: Errors = {}
        add(errors, f"row:{email}:role", "already has a web password: they sign in with it")
        return _members_page(web, session, errors=errors, status_code=409)
    return _invited(web, session, state, member)


@router.post(BASE + "/members", response_class=HTMLResponse)
def set_member(web: InProjectWeb, form: Form, session: DbSession, state: State) -> Response:
    """Adds a member, or changes a member's role (``row`` says which form was used)."""
    require_admin(web, "Managing members")
    email, role = text(form, "email"), text(form, "role")
    row = text(form, "row")  # set when a member's own row was submitted
    prefix = f"row:{row}:" if row else ""
    errors: Errors = {}
    body: MemberIn | None = None
    try:
        body = MemberIn(email=email, role=role)
    except ValidationError as exc:
        errors = from_validation(exc, lambda n: prefix + (n or "form"))
    if body is not None:
        try:
            user = projects.set_member(
                session,
                project_id=web.ctx.project.id,
                email=body.email,
                role=body.role,
                actor=web.ctx.actor,
            )
            session.commit()
        except (InvalidInput, Conflict) as exc:
            session.rollback()
            if isinstance(exc, InvalidInput):
                errors = from_invalid(exc, lambda n: prefix + (n or "form"))
            else:
                add(errors, prefix + "role", str(exc))
        else:
            if not row and not user.password_hash:  # new to the web UI: a link to send
                return _invited(web, session, state, user, saved=f"{user.email} is now {body.role}")
            return _back(web, saved=f"{user.email} is now {body.role}")
    values = {} if row else {"email": email, "role": role}
    return _members_page(web, session, form=values or None, errors=errors, status_code=422)


@router.post(BASE + "/members/remove", response_class=HTMLResponse)
def remove_member(web: InProjectWeb, form: Form, session: DbSession) -> Response:
    require_admin(web, "Managing members")
    email = text(form, "email")
    try:
        auth.remove_membership(
            session,
            project_id=web.ctx.project.id,
            email=email,
            actor=web.ctx.actor,
            confirm_self=form.get("confirm") == "yes",
        )
        session.commit()
    except (Conflict, NotFound, InvalidInput) as exc:
        session.rollback()
        errors: Errors = {}
        message = auth.SELF_REMOVAL if isinstance(exc, InvalidInput) else str(exc)
        add(errors, f"row:{email}:role", message)
        code = 422 if isinstance(exc, InvalidInput) else 409
        return _members_page(web, session, errors=errors, status_code=code)
    if auth.normalize_email(email) == web.user.email:  # gone from the project: back to the start
        return RedirectResponse("/", status_code=303)
    return _back(web, removed=email)
