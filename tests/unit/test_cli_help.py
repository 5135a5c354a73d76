"""Every command's help reads as plain text: no reStructuredText backticks from docstrings,
and nothing cut off with an ellipsis (rich's boxes did that to option names in a narrow
terminal; the CLI uses click's wrapping help instead)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperGroup

from certautopilot.cli.main import app


def _helps(command: Any, path: list[str]) -> Iterator[tuple[str, str]]:
    ctx = command.context_class(command, info_name=" ".join(path), terminal_width=60)
    yield " ".join(path), command.get_help(ctx)
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from _helps(sub, [*path, name])


def test_help_texts_are_plain_and_whole() -> None:
    helps = dict(_helps(typer.main.get_command(app), ["certautopilot"]))
    assert "certautopilot certs create" in helps and "certautopilot requests approve" in helps
    bad = [name for name, text in helps.items() if "``" in text or "…" in text]
    assert not bad, bad
    create = helps["certautopilot certs create"]
    for option in ("--issuer", "--san", "--wait", "--timeout", "--url", "--token", "--output"):
        assert option in create
    assert "CERTAUTOPILOT_TOKEN" in create  # wrapped, not cut at 60 columns
