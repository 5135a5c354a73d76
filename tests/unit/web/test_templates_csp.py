"""The templates need nothing the Content-Security-Policy refuses (#12 item 8): no inline
script, event handler, ``javascript:`` URL, ``<style>`` or ``style=`` attribute, and scripts
and stylesheets only from this origin. A new one fails here, long before a browser test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from certautopilot.api import docs
from certautopilot.web.common import HERE

TEMPLATES = sorted((HERE / "templates").rglob("*.html"))
FORBIDDEN = {
    "an inline <script> (put it in static/app.js)": re.compile(
        r"<script(?![^>]*\ssrc=)[^>]*>", re.I
    ),
    "a script from elsewhere": re.compile(r"<script[^>]*\ssrc=\"(?!/static/)", re.I),
    "an inline event handler (use a data- attribute and app.js)": re.compile(
        r"<[a-z][^>]*\son[a-z]+\s*=", re.I
    ),
    "an htmx inline handler": re.compile(r"\shx-on[:-]|\bjs:", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
    "a <style> element (put it in static/app.css)": re.compile(r"<style", re.I),
    "a style attribute (use a class in static/app.css)": re.compile(r"\sstyle\s*=", re.I),
    "a stylesheet from elsewhere": re.compile(r"<link[^>]*\shref=\"(?!/static/)[^\"]*\.css", re.I),
}


def offences(text: str) -> list[str]:
    return [what for what, pattern in FORBIDDEN.items() if pattern.search(text)]


def test_there_are_templates() -> None:
    assert len(TEMPLATES) > 20


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(HERE)))
def test_a_template_needs_no_csp_exception(path: Path) -> None:
    assert offences(path.read_text()) == []


def test_the_docs_page_needs_no_csp_exception() -> None:
    assert offences(docs.page("T", "/openapi.json").replace(docs.ASSETS, "/static")) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "<script>alert(1)</script>",
        '<script type="module">x()</script>',
        '<script src="https://cdn.example/x.js"></script>',
        '<button type="button" onclick="go()">',
        '<body onload="go()">',
        '<div hx-on:click="go()">',
        '<a href="javascript:history.back()">',
        "<style>p{color:red}</style>",
        '<p class="x" style="margin:0">',
        '<link rel="stylesheet" href="https://cdn.example/x.css">',
    ],
)
def test_the_check_finds_each_kind(snippet: str) -> None:
    assert offences(snippet)


def test_what_the_templates_do_use_passes() -> None:
    assert not offences('<script src="/static/app.js" defer></script>')
    assert not offences('<link rel="stylesheet" href="/static/app.css">')
    assert not offences('<form method="post" data-confirm="Remove?" class="di">')
    assert not offences("<p>Based on the policy, one=two</p>")
