"""The target plugins, one module per kind, found by kind name in the plugin registry.

Every kind (CertAutoPilot's own included) is registered under the
``certautopilot.targets`` entry-point group: a class with ``name``, ``title``,
``config_model`` (secret fields marked with ``secret_field``), a ``validate(config,
field)`` classmethod for its save-time rules, and the :class:`Target` methods, built with
its validated config. The core keeps no table of kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel

from certautopilot.distribution.interfaces import Target
from certautopilot.errors import ConfigError, InvalidInput
from certautopilot.plugins import Family, Plugin, registry


def kinds() -> list[str]:
    """The installed target kinds."""
    return list(registry().family(Family.TARGETS))


def plugin(kind: str, *, field: str = "kind") -> Plugin:
    """The plugin of ``kind``; unknown: a 422 on ``field`` listing the known kinds."""
    return registry().get(Family.TARGETS, kind, field=field)


def plugin_class(kind: str) -> Any:
    try:
        return plugin(kind).cls
    except InvalidInput:
        raise ConfigError(f"no distribution target plugin for kind {kind!r}") from None


def build(kind: str, config: BaseModel, *, delivery_id: str = "") -> Target:
    target = plugin_class(kind)(config)
    if hasattr(target, "delivery_id"):
        target.delivery_id = delivery_id
    assert isinstance(target, Target)
    return target


def validate(kind: str, config: BaseModel, field: str) -> None:
    """Checks a target can be saved with the plugin's own rules (hosts and paths allowed,
    keys parse). Raises ``InvalidInput`` naming the field."""
    hook = getattr(plugin_class(kind), "validate", None)
    if callable(hook):
        cast(Callable[[BaseModel, str], None], hook)(config, field)
