"""Fault-injection pause points for the crash tests.

When ``CERTAUTOPILOT_FAULT_PAUSE`` names a point, the worker writes
``CERTAUTOPILOT_FAULT_MARKER`` and sleeps there until it is killed. Unset in production,
where each call is one environment look-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = ("after_order", "waiting_propagation", "after_finalize")


def pause_point(name: str) -> None:
    if os.environ.get("CERTAUTOPILOT_FAULT_PAUSE") != name:
        return
    marker = os.environ.get("CERTAUTOPILOT_FAULT_MARKER")
    if marker:
        Path(marker).write_text(name)
    while True:
        time.sleep(3600)
