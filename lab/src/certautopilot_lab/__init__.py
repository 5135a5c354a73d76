"""The project's local ACME lab: BIND 9 (RFC 2136 + TSIG) and Pebble validating through it.

Used by ``make demo``, the tests and the benchmarks. See ``core`` for start/stop, ``probes``
for Pebble's management API and AXFR, ``cli`` for ``certautopilot lab ...``, ``demo`` for
``certautopilot demo``, ``adcs_double`` for the AD CS Web Enrollment double.

A distribution of its own (``certautopilot-lab``, ./lab), not part of the product wheel: it
adds its commands to ``certautopilot`` through the entry-point group ``certautopilot.cli``.
"""

from certautopilot_lab.core import (
    PortInUse,
    lab_status,
    start_lab,
    start_lab_on_free_ports,
    stop_lab,
)
from certautopilot_lab.info import ZONES, LabInfo
from certautopilot_lab.ports import free_port, free_ports
from certautopilot_lab.probes import axfr_txt, pebble_cert_status, pebble_roots

__all__ = [
    "ZONES",
    "LabInfo",
    "PortInUse",
    "axfr_txt",
    "free_port",
    "free_ports",
    "lab_status",
    "pebble_cert_status",
    "pebble_roots",
    "start_lab",
    "start_lab_on_free_ports",
    "stop_lab",
]
