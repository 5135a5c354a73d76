"""The in-memory twins are for tests: no entry point registers one as a production plugin
(a service configured with one would lose every deployment, key or message on restart)."""

from __future__ import annotations

from importlib.metadata import distributions

TWINS = (
    "certautopilot.distribution.targets.memory",
    "certautopilot.crypto.kek.memory",
    "certautopilot.notifications.memory",
)


def test_no_entry_point_loads_a_twin() -> None:
    registered = [
        f"{ep.group}: {ep.name} = {ep.value}"
        for dist in distributions()
        for ep in dist.entry_points
        if ep.group.startswith("certautopilot") and ep.module in TWINS
    ]
    assert registered == []
