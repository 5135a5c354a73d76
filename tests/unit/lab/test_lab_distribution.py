"""The lab and the AD CS double live in their own distribution (./lab, certautopilot-lab).

The product wheel must ship no fake CA and no process spawners; the CLI gets `lab` and
`demo` only from the lab's entry points (group ``certautopilot.cli``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import typer
from typer.testing import CliRunner

from certautopilot.cli.main import CLI_GROUP, add_plugin_commands

ROOT = Path(__file__).resolve().parents[3]


def test_the_product_wheel_ships_no_lab(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so the build leaves no build/ in the work tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):  # what the product's build may read
        shutil.copy(ROOT / name, source)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("certautopilot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "certautopilot/cli/main.py" in names  # the wheel is the product's
    assert any(n.startswith("certautopilot/web/templates/") for n in names)
    shipped = [n for n in names if "lab/" in n or "adcs_double" in n or "certautopilot_lab" in n]
    assert shipped == []
    entry_text = next(
        zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt")
    )
    assert f"[{CLI_GROUP}]" not in entry_text


def test_the_lab_distribution_brings_lab_and_demo() -> None:
    found = {e.name: e.value for e in entry_points(group=CLI_GROUP)}
    assert found["lab"] == "certautopilot_lab.cli:lab_app"
    assert found["demo"] == "certautopilot_lab.demo:demo"


def _cli(plugins: list[EntryPoint]) -> typer.Typer:
    app = typer.Typer(no_args_is_help=True)

    @app.command()
    def serve() -> None:
        """Serve."""

    add_plugin_commands(app, plugins)
    return app


def test_without_the_lab_its_commands_are_absent_and_say_what_to_install() -> None:
    runner = CliRunner()
    app = _cli([])
    listing = runner.invoke(app, ["--help"]).output
    assert "serve" in listing
    assert "lab" not in listing and "demo" not in listing
    for args in (["demo"], ["lab", "start", "--free-ports"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "certautopilot-lab" in result.output
        assert "pip install -e ./lab" in result.output


def test_with_the_lab_its_commands_are_there() -> None:
    runner = CliRunner()
    app = _cli(list(entry_points(group=CLI_GROUP)))
    listing = runner.invoke(app, ["--help"]).output
    assert "lab" in listing and "demo" in listing
    lab_help = runner.invoke(app, ["lab", "--help"]).output
    assert "start" in lab_help and "adcs" in lab_help
    assert "--port" in runner.invoke(app, ["demo", "--help"]).output


def test_a_plugin_cannot_take_a_built_in_name_or_break_the_cli() -> None:
    runner = CliRunner()
    app = _cli(
        [
            EntryPoint("serve", "certautopilot_lab.demo:demo", CLI_GROUP),
            EntryPoint("broken", "certautopilot_lab.no_such_module:app", CLI_GROUP),
        ]
    )
    assert "Serve." in runner.invoke(app, ["serve", "--help"]).output  # still the built-in
    assert "broken" not in runner.invoke(app, ["--help"]).output
