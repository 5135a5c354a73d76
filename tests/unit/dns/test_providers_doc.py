"""docs/dns-providers.md lists exactly the registered DNS providers, with their fields."""

from __future__ import annotations

import runpy
from pathlib import Path

from certautopilot.dns import service as zones

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "dns_providers_doc.py"


def test_doc_is_the_registry() -> None:
    script = runpy.run_path(str(SCRIPT))
    doc = script["DOC"].read_text(encoding="utf-8")
    assert doc == script["render"](), "run bench/dns_providers_doc.py to update the page"
    listed = {line.split("`")[1] for line in doc.splitlines() if line.startswith("## `")}
    assert listed == {p.name for p in zones.list_providers()}
    tested = {p.name for p in zones.list_providers() if p.tested}
    assert tested == {"rfc2136", "manual", "powerdns", "route53"}
    for name in tested:
        assert f"## `{name}` — " in doc and f"- **{name}**:" in doc


def test_forms_list_rfc2136_and_manual_first() -> None:
    names = [p.name for p in zones.list_providers()]
    assert names[:2] == ["rfc2136", "manual"]
    assert names[2:] == sorted(names[2:])
