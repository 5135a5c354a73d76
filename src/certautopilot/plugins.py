"""The plugin registry: every external system is a plugin, found by entry point alone.

Why: a team that needs one more DNS provider, target or key backend should be able to
``pip install`` a package that registers it, with no change to the core. So the core has no
table of built-in kinds: CertAutoPilot's own plugins are registered in its ``pyproject.toml``
exactly as a third party's would be, and every family is read from its entry-point group.

Families (entry-point groups, :class:`Family`)::

    certautopilot.issuers                 ACME, AD CS
    certautopilot.dns_providers           rfc2136, manual, every dns-lexicon provider
    certautopilot.targets                 ssh, local, haproxy, webhook, aws-acm, ...
    certautopilot.kek                     file, env
    certautopilot.notification_channels   email (SMTP), webhook

The contract (what an entry point must load to):

- a *plugin class* with the class attributes ``name`` (the kind a user names in a request
  body, e.g. ``"rfc2136"``), ``title`` (a human name) and ``config_model`` (a pydantic model
  of its settings; secret fields are declared with :func:`secret_field` and are stored under
  envelope encryption, never returned), and optionally ``capabilities`` (a frozenset of
  flags the core may ask about); the family's own Protocol (in that domain's
  ``interfaces.py``) says which methods the class implements;
- or a *plugin set*: a zero-argument callable returning such classes (dns-lexicon brings
  ~90 providers through one entry point).

A broken entry point fails loudly when its family is first loaded (:class:`ConfigError`
naming the entry point and its distribution); two plugins with one name in a family too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, Field

from certautopilot.errors import ConfigError, InvalidInput

SECRET = "secret"


class Family(StrEnum):
    ISSUERS = "certautopilot.issuers"
    DNS_PROVIDERS = "certautopilot.dns_providers"
    TARGETS = "certautopilot.targets"
    KEK = "certautopilot.kek"
    NOTIFICATION_CHANNELS = "certautopilot.notification_channels"

    @property
    def key(self) -> str:
        """The family's name in ``GET /api/v1/plugins``: ``dns_providers``."""
        return self.value.removeprefix("certautopilot.")


def secret_field(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic ``Field`` marked secret: encrypted at rest, never returned or logged."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[SECRET] = True
    kwargs.setdefault("repr", False)  # a model's repr (a log line, a traceback) hides it
    return Field(default, json_schema_extra=extra, **kwargs)


def secret_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of ``model``'s fields declared with :func:`secret_field`."""
    names = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, Mapping) and extra.get(SECRET) is True:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class Plugin:
    """One registered plugin: its class and what the core and the API say about it."""

    family: Family
    name: str
    title: str
    source: str
    cls: type[Any]
    config_model: type[BaseModel]
    capabilities: frozenset[str] = field(default_factory=frozenset)

    @property
    def secrets(self) -> tuple[str, ...]:
        return secret_fields(self.config_model)

    def config_schema(self) -> dict[str, Any]:
        return self.config_model.model_json_schema()

    def parse_config(self, data: Mapping[str, Any], *, field_prefix: str) -> BaseModel:
        """Validates settings against the plugin's model; errors name ``field_prefix.<f>``."""
        from pydantic import ValidationError

        try:
            return self.config_model.model_validate(dict(data))
        except ValidationError as exc:
            errors = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                message = err["msg"].removeprefix("Value error, ")
                errors.append((f"{field_prefix}.{where}" if where else field_prefix, message))
            raise InvalidInput(f"the {self.name} settings are not valid", errors) from exc


EntryPointSource = Callable[[str], Iterable[EntryPoint]]


def _installed_entry_points(group: str) -> Iterable[EntryPoint]:
    return entry_points(group=group)


class Registry:
    """Loads each family from its entry-point group once, on first use."""

    def __init__(self, source: EntryPointSource = _installed_entry_points) -> None:
        self._source = source
        self._families: dict[Family, dict[str, Plugin]] = {}
        self._lock = threading.Lock()

    def family(self, family: Family) -> Mapping[str, Plugin]:
        with self._lock:
            if family not in self._families:
                self._families[family] = self._load(family)
            return self._families[family]

    def get(self, family: Family, name: str, *, field: str = "kind") -> Plugin:
        """The plugin ``name``; an unknown name is a 422 on ``field`` listing the known."""
        plugins = self.family(family)
        plugin = plugins.get(name)
        if plugin is None:
            known = ", ".join(sorted(plugins)) or "none"
            message = f"unknown {family.key} plugin {name!r} (known: {known})"
            raise InvalidInput.field(field, message)
        return plugin

    def all(self) -> dict[Family, Mapping[str, Plugin]]:
        return {family: self.family(family) for family in Family}

    def _load(self, family: Family) -> dict[str, Plugin]:
        found: dict[str, Plugin] = {}
        for ep in self._source(family.value):
            source = ep.dist.name if ep.dist is not None else "unknown"
            try:
                loaded = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"plugin entry point {ep.name!r} of {source} ({family.value}) "
                    f"cannot be loaded: {exc}"
                ) from exc
            classes = [loaded] if isinstance(loaded, type) else list(_call_set(ep, loaded))
            for cls in classes:
                plugin = _describe(family, cls, source=source, entry=ep.name)
                if plugin.name in found:
                    raise ConfigError(
                        f"two {family.key} plugins are named {plugin.name!r} "
                        f"({found[plugin.name].source} and {source})"
                    )
                found[plugin.name] = plugin
        return dict(sorted(found.items()))


def _call_set(ep: EntryPoint, loaded: Any) -> Iterable[type[Any]]:
    if not callable(loaded):
        raise ConfigError(f"plugin entry point {ep.name!r} is neither a class nor a callable")
    try:
        return list(loaded())
    except Exception as exc:
        raise ConfigError(f"plugin set {ep.name!r} failed to list its plugins: {exc}") from exc


def _describe(family: Family, cls: type[Any], *, source: str, entry: str) -> Plugin:
    name = getattr(cls, "name", None)
    config_model = getattr(cls, "config_model", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"plugin {cls.__qualname__} ({entry}) has no class attribute 'name'")
    if not (isinstance(config_model, type) and issubclass(config_model, BaseModel)):
        raise ConfigError(f"plugin {name!r} ({entry}) needs a pydantic 'config_model'")
    return Plugin(
        family=family,
        name=name,
        title=str(getattr(cls, "title", name)),
        source=source,
        cls=cls,
        config_model=config_model,
        capabilities=frozenset(getattr(cls, "capabilities", frozenset())),
    )


_registry: Registry | None = None
_registry_lock = threading.Lock()


def registry() -> Registry:
    """The process's registry of installed plugins."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def describe(plugin: Plugin) -> dict[str, Any]:
    """One plugin as ``GET /api/v1/plugins`` and ``certautopilot plugins`` show it."""
    return {
        "name": plugin.name,
        "title": plugin.title,
        "source": plugin.source,
        "config_schema": plugin.config_schema(),
    }


def listing(reg: Registry | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every installed plugin by family key (``dns_providers``...), as the API answers."""
    found = (reg or registry()).all()
    return {
        family.key: [describe(p) for p in plugins.values()] for family, plugins in found.items()
    }
