"""``certautopilot plugins``: the installed plugins of every family, read from the registry.

Local (no server needed): it lists what this Python environment's entry points register,
the same document ``GET /api/v1/plugins`` answers.
"""

from __future__ import annotations

import json
from enum import StrEnum

import typer

from certautopilot.plugins import listing


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


def plugins(
    output: Output = typer.Option(Output.TABLE, "--output", "-o", help="table or json"),
) -> None:
    """List the installed plugins: issuers, DNS providers, targets, KEK, channels."""
    found = listing()
    if output is Output.JSON:
        typer.echo(json.dumps(found, indent=2, sort_keys=True))
        return
    rows = [("FAMILY", "NAME", "SOURCE", "TITLE")]
    for family, items in found.items():
        rows += [(family, p["name"], p["source"], p["title"]) for p in items]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[3]]))
