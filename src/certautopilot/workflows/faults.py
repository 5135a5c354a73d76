"""Fault-injection pause points for the crash tests.

When ``CERTAUTOPILOT_FAULT_PAUSE`` names a point, the worker writes
``CERTAUTOPILOT_FAULT_MARKER`` and sleeps there until it is killed. Unset in production,
where each call is one attribute look-up on the worker's settings.
"""

from __future__ import annotations

import time

from certautopilot.workflows.runtime import runtime

POINTS = ("after_order", "waiting_propagation", "after_finalize")


def pause_point(name: str) -> None:
    settings = runtime().settings
    if settings.fault_pause != name:
        return
    if settings.fault_marker is not None:
        settings.fault_marker.write_text(name)
    while True:
        time.sleep(3600)
