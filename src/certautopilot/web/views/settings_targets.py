"""Settings for project admins: distribution targets (add, edit, delete, test).

The target form is rendered from the target plugin registry: a kind select, then the
chosen kind's fields read from its config model (nested blocks such as ``files`` are
shown as their own group; secrets are password inputs, never filled back in, left blank
on an edit to keep the stored value). Every write calls the distribution service, as the
API does; the Test runs the target's own check outside any transaction.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from certautopilot import links
from certautopilot.audit.authorship import authorship
from certautopilot.deps import DbSession, State
from certautopilot.distribution import service as distribution
from certautopilot.distribution import targets as plugins
from certautopilot.distribution.schemas import (
    TargetIn,
    TargetOut,
    TargetPatch,
    TargetTestOut,
    field_of,
)
from certautopilot.errors import Conflict, InvalidInput
from certautopilot.plugins import secret_fields
from certautopilot.web.common import Form, InProjectWeb, Web, WebRoute
from certautopilot.web.views.forms import Errors, add, from_invalid, require_admin, text, validated

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BASE = "/p/{project}/settings/targets"
PREFIX = "s_"  # form keys of a kind's settings: s_<field> or s_<block>.<field>
CHECK = "check_"  # form keys of the post-deploy check: check_host, check_port, ...
CHECK_FIELDS = ("host", "port", "server_name", "wait_seconds")
_PEM = re.compile(r"^(-----BEGIN [A-Z0-9 ]+-----)\s*(.*?)\s*(-----END [A-Z0-9 ]+-----)$", re.S)


@dataclass(frozen=True)
class FormField:
    key: str
    name: str  # the dotted settings path: ``port``, ``files.directory``
    label: str
    required: bool
    secret: bool
    kind: str  # "text", "number", "bool", "pairs" (key=value lines), "long" (a textarea)
    default: str
    help: str


@dataclass(frozen=True)
class KindChoice:
    name: str
    title: str
    fields: tuple[FormField, ...]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _input_kind(name: str, info: FieldInfo) -> str:
    annotation = info.annotation
    args = set(typing.get_args(annotation)) | {annotation}
    if bool in args:
        return "bool"
    if typing.get_origin(annotation) is dict:
        return "pairs"
    if int in args or float in args:
        return "number"
    if name.endswith("_pem") or name == "host_key":
        return "long"
    return "text"


def _default(info: FieldInfo) -> str:
    if info.is_required() or info.default is None:
        return ""
    value = info.default
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, str | int | float):
        return str(value)
    return ""


def _fields(model: type[BaseModel], outer: str = "") -> list[FormField]:
    secret = set(secret_fields(model))
    out: list[FormField] = []
    for name, info in model.model_fields.items():
        path = f"{outer}.{name}" if outer else name
        nested = _model_of(info.annotation)
        if nested is not None:
            out.extend(_fields(nested, path))
            continue
        out.append(
            FormField(
                key=PREFIX + path,
                name=path,
                label=path.replace("_", " ").replace(".", ": "),
                required=info.is_required(),
                secret=name in secret,
                kind=_input_kind(name, info),
                default=_default(info),
                help=info.description or "",
            )
        )
    return out


def _choices() -> list[KindChoice]:
    out = []
    for kind in sorted(plugins.kinds()):
        plugin = plugins.plugin(kind)
        out.append(KindChoice(kind, plugin.title, tuple(_fields(plugin.config_model))))
    return out


def _choice(name: str) -> KindChoice:
    choices = {c.name: c for c in _choices()}
    return choices.get(name) or choices.get("local") or next(iter(choices.values()))


def _field_of(name: str) -> str:
    """An error field of the service (``local.files.directory``) -> its form key."""
    head, _, rest = name.partition(".")
    if head == "post_deploy_check":
        return CHECK + rest if rest in CHECK_FIELDS else CHECK + "host"
    if head in ("name", "kind"):
        return head
    if head in {field_of(k) for k in plugins.kinds()}:
        return PREFIX + rest.split("[", 1)[0] if rest else "settings"
    return "form"


def _pem(value: str) -> str:
    """A PEM typed into a one-line (password) input loses its line breaks: put them back."""
    found = _PEM.match(value)
    if not found or "\n" in value:
        return value
    head, body, tail = found.groups()
    body = re.sub(r"\s+", "", body)
    return "\n".join([head, *(body[i : i + 64] for i in range(0, len(body), 64)), tail]) + "\n"


def _pairs(value: str, key: str, errors: Errors) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in value.splitlines():
        if not line.strip():
            continue
        k, sep, v = line.partition("=")
        if not sep or not k.strip():
            add(errors, key, f"write one name=value a line, not {line.strip()!r}")
            continue
        out[k.strip()] = v.strip()
    return out


def _put(settings: dict[str, Any], path: str, value: Any) -> None:
    *outer, last = path.split(".")
    here = settings
    for part in outer:
        here = here.setdefault(part, {})
    here[last] = value


def _settings(
    choice: KindChoice, form: dict[str, Any], errors: Errors, *, editing: bool
) -> dict[str, Any]:
    """The kind's block from the form. Blank: the field's default (none when it has
    none); a blank secret on an edit is left out, so the stored one is kept."""
    settings: dict[str, Any] = {}
    for f in choice.fields:
        if f.kind == "bool":
            _put(settings, f.name, bool(form.get(f.key)))
            continue
        raw = form.get(f.key)
        value = str(raw[0] if isinstance(raw, list) else raw or "")
        value = value.strip() if f.kind != "long" else value.strip().replace("\r\n", "\n")
        if f.kind == "pairs":
            _put(settings, f.name, _pairs(value, f.key, errors))
        elif value:
            _put(settings, f.name, _pem(value) if f.secret else value)
        elif f.secret and editing:
            continue
        elif not f.required:
            _put(settings, f.name, None if not f.default else f.default)
    return settings


def _check(form: dict[str, Any]) -> dict[str, Any] | None:
    if not text(form, CHECK + "host"):
        return None
    check: dict[str, Any] = {"host": text(form, CHECK + "host")}
    for name in ("port", "server_name", "wait_seconds"):
        if text(form, CHECK + name):
            check[name] = text(form, CHECK + name)
    return check


def _secret_keys(choice: KindChoice) -> set[str]:
    return {f.key for f in choice.fields if f.secret}


def _kept(form: dict[str, Any], choice: KindChoice) -> tuple[dict[str, Any], bool]:
    secret = _secret_keys(choice)
    values = {k: v for k, v in form.items() if k != "csrf" and k not in secret}
    return values, any(text(form, k) for k in secret)


def _flat(settings: dict[str, Any], blocks: set[str], outer: str = "") -> dict[str, Any]:
    """Stored settings by dotted path; ``blocks`` are the nested models' names."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{outer}.{key}" if outer else key
        if isinstance(value, dict) and path in blocks:
            out.update(_flat(value, blocks, path))
        else:
            out[path] = value
    return out


def _form_of(target: TargetOut, choice: KindChoice) -> dict[str, Any]:
    values: dict[str, Any] = {"name": target.name, "kind": target.kind}
    blocks = {f.name.rsplit(".", 1)[0] for f in choice.fields if "." in f.name}
    current = _flat(target.config, blocks)
    for f in choice.fields:
        value = current.get(f.name)
        if f.secret or value is None:
            continue
        if f.kind == "bool":
            values[f.key] = "on" if value else ""
        elif f.kind == "pairs":
            values[f.key] = "\n".join(f"{k}={v}" for k, v in dict(value).items())
        else:
            values[f.key] = str(value)
    if target.post_deploy_check:
        for name in CHECK_FIELDS:
            value = getattr(target.post_deploy_check, name)
            if value is not None:
                values[CHECK + name] = str(value)
    return values


def _defaults(choice: KindChoice) -> dict[str, Any]:
    return {f.key: f.default for f in choice.fields if f.default}


def _page(
    web: Web,
    session: DbSession,
    *,
    kind: str,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
    secret_dropped: bool = False,
    editing: TargetOut | None = None,
    tested: tuple[TargetOut, TargetTestOut] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    assert web.project is not None
    items = [
        distribution.to_out(t)
        for t in distribution.list_targets(session, project_id=web.project.id)
    ]
    choices = _choices()
    chosen = _choice(kind)
    base = {} if editing else _defaults(chosen)
    return web.render(
        "settings/targets.html",
        status_code=status_code,
        tab="targets",
        items=items,
        authors=authorship(session, subject_type="target", ids=[t.id for t in items]),
        used=distribution.attached_counts(session, project_id=web.project.id),
        titles={c.name: c.title for c in choices},
        choices=choices,
        chosen=chosen,
        form={"kind": chosen.name, **base, **(form or {})},
        errors=errors or {},
        secret_dropped=secret_dropped,
        editing=editing,
        tested=tested,
        problem=problem,
        created=web.request.query_params.get("created", ""),
        saved=web.request.query_params.get("saved", ""),
        deleted=web.request.query_params.get("deleted", ""),
        detached=web.request.query_params.get("detached", ""),
        detached_count=int(c) if (c := web.request.query_params.get("count", "")).isdigit() else 0,
        switched_on=web.request.query_params.get("enabled", ""),
        switched_off=web.request.query_params.get("disabled", ""),
    )


def _target(web: Web, session: DbSession, target_id: str) -> TargetOut:
    assert web.project is not None
    return distribution.to_out(
        distribution.get_target(session, project_id=web.project.id, target_id=target_id)
    )


@router.get(BASE, response_class=HTMLResponse)
def targets_page(web: InProjectWeb, session: DbSession, kind: str = "local") -> Response:
    require_admin(web, "Managing distribution targets")
    return _page(web, session, kind=kind)


def _written(session: DbSession, errors: Errors, write: Callable[[], object]) -> bool:
    """Runs the service call and commits; a refusal is rolled back and lands in ``errors``
    next to its field (a taken name on ``name``)."""
    try:
        write()
        session.commit()
    except InvalidInput as exc:
        session.rollback()
        errors.update(from_invalid(exc, _field_of))
        return False
    except Conflict as exc:
        session.rollback()
        add(errors, "name", str(exc))
        return False
    return True


@router.post(BASE, response_class=HTMLResponse)
def create_target(web: InProjectWeb, form: Form, session: DbSession, state: State) -> Response:
    require_admin(web, "Adding a distribution target")
    errors: Errors = {}
    choice = _choice(text(form, "kind"))
    body: dict[str, Any] = {
        "name": text(form, "name"),
        "kind": choice.name,
        field_of(choice.name): _settings(choice, form, errors, editing=False),
        "post_deploy_check": _check(form),
    }
    model = validated(TargetIn, body, _field_of, errors)
    if (
        model is not None
        and not errors
        and _written(
            session,
            errors,
            lambda: distribution.create_target(
                session, state.kek, project_id=web.ctx.project.id, body=model, actor=web.ctx.actor
            ),
        )
    ):
        assert web.project is not None
        return RedirectResponse(
            links.settings(web.project.slug, "targets", created=model.name), status_code=303
        )
    values, dropped = _kept(form, choice)
    return _page(
        web,
        session,
        kind=choice.name,
        form=values,
        errors=errors,
        secret_dropped=dropped,
        status_code=422,
    )


@router.get(BASE + "/{target_id}", response_class=HTMLResponse)
def edit_page(target_id: str, web: InProjectWeb, session: DbSession) -> Response:
    require_admin(web, "Editing a distribution target")
    target = _target(web, session, target_id)
    choice = _choice(target.kind)
    return _page(web, session, kind=target.kind, form=_form_of(target, choice), editing=target)


@router.post(BASE + "/{target_id}", response_class=HTMLResponse)
def edit_target(
    target_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    require_admin(web, "Editing a distribution target")
    assert web.project is not None
    found = distribution.get_target(session, project_id=web.project.id, target_id=target_id)
    target = distribution.to_out(found)
    choice = _choice(target.kind)
    errors: Errors = {}
    body: dict[str, Any] = {
        "name": text(form, "name"),
        field_of(choice.name): _settings(choice, form, errors, editing=True),
        "post_deploy_check": _check(form),
    }
    patch = validated(TargetPatch, body, _field_of, errors)
    if (
        patch is not None
        and not errors
        and _written(
            session,
            errors,
            lambda: distribution.update_target(
                session, state.kek, target=found, body=patch, actor=web.ctx.actor
            ),
        )
    ):
        return RedirectResponse(
            links.settings(web.project.slug, "targets", saved=found.name), status_code=303
        )
    values, dropped = _kept(form, choice)
    values["kind"] = target.kind
    return _page(
        web,
        session,
        kind=target.kind,
        form=values,
        errors=errors,
        secret_dropped=dropped,
        editing=target,
        status_code=422,
    )


@router.post(BASE + "/{target_id}/delete", response_class=HTMLResponse)
def delete_target(target_id: str, web: InProjectWeb, _: Form, session: DbSession) -> Response:
    require_admin(web, "Deleting a distribution target")
    assert web.project is not None
    found = distribution.get_target(session, project_id=web.project.id, target_id=target_id)
    name = found.name
    try:
        distribution.delete_target(session, target=found, actor=web.ctx.actor)
        session.commit()
    except Conflict as exc:
        session.rollback()
        return _page(
            web,
            session,
            kind="local",
            problem=f"Target {name} was not deleted: {exc}",
            status_code=409,
        )
    return RedirectResponse(
        links.settings(web.project.slug, "targets", deleted=name), status_code=303
    )


@router.post(BASE + "/{target_id}/enabled", response_class=HTMLResponse)
def switch_target(
    target_id: str, web: InProjectWeb, form: Form, session: DbSession, state: State
) -> Response:
    """Enable or Disable: a disabled target keeps its settings and its certificates but
    receives nothing (new versions skip it, and say so on their timeline)."""
    require_admin(web, "Enabling or disabling a distribution target")
    assert web.project is not None
    found = distribution.get_target(session, project_id=web.project.id, target_id=target_id)
    enabled = text(form, "enabled") == "true"
    distribution.update_target(
        session, state.kek, target=found, body=TargetPatch(enabled=enabled), actor=web.ctx.actor
    )
    session.commit()
    word = "enabled" if enabled else "disabled"
    return RedirectResponse(
        links.settings(web.project.slug, "targets", **{word: found.name}), status_code=303
    )


@router.post(BASE + "/{target_id}/detach", response_class=HTMLResponse)
def detach_target(target_id: str, web: InProjectWeb, _: Form, session: DbSession) -> Response:
    """Detach from all: the step before deleting a target that certificates still use."""
    require_admin(web, "Detaching a distribution target")
    assert web.project is not None
    found = distribution.get_target(session, project_id=web.project.id, target_id=target_id)
    count = distribution.detach_everywhere(session, target=found, actor=web.ctx.actor)
    session.commit()
    return RedirectResponse(
        links.settings(web.project.slug, "targets", detached=found.name, count=str(count)),
        status_code=303,
    )


@router.post(BASE + "/{target_id}/test", response_class=HTMLResponse)
def test_target(
    target_id: str, web: InProjectWeb, _: Form, session: DbSession, state: State
) -> Response:
    require_admin(web, "Testing a distribution target")
    target = _target(web, session, target_id)
    settings = distribution.prepare_test(
        session, state.kek, project_id=web.ctx.project.id, target_id=target_id, actor=web.ctx.actor
    )
    session.commit()  # the test is network I/O
    result = distribution.run_target_test(settings)
    return _page(web, session, kind="local", tested=(target, result))
