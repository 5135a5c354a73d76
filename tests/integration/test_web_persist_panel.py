"""The dns-persist-01 panel of the certificate detail page, against the scripted CA of
``test_persist_challenge`` (it offers the challenge) and the lab's BIND serving the records:
per manual-zone name the record to publish, its status in words, and persistUntil."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import pytest

from certautopilot.auth import service as auth
from certautopilot.clock import utcnow
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.dns.persist import build_record
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service
from tests.integration.test_persist_challenge import (
    ISSUER_DOMAIN,
    PersistCA,
    _put,
    _request,
    _stub_issuer,
)

pytestmark = pytest.mark.lab
PASSWORD = "persist-panel-password-1"


@pytest.fixture
def persist_ca() -> Iterator[PersistCA]:
    ca = PersistCA(offer_persist=True)
    try:
        yield ca
    finally:
        ca.stop()


def _signed_in_get(service: Service, *paths: str) -> list[str]:
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            auth.set_password(auth.ensure_user(session, email="admin@example.test"), PASSWORD)
    finally:
        engine.dispose()
    client = service.client
    try:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        signed_in = client.post(
            "/login",
            data={"email": "admin@example.test", "password": PASSWORD, "csrf": csrf.group(1)},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text
        pages = [client.get(p) for p in paths]
        assert [p.status_code for p in pages] == [200] * len(paths)
        return [p.text for p in pages]
    finally:
        client.cookies.clear()


def _record(html: str, name: str) -> str:
    start = rf'data-testid="persist-record" data-name="{re.escape(name)}"'
    found = re.search(start + r'.*?(?=data-testid="persist-record"|\Z)', html, re.S)
    assert found is not None, html
    return found.group(0)


def _text(block: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">([^<]*)<', block)
    assert found is not None, block
    return unescape(found.group(1)).strip()


def test_panel_shows_each_record_with_its_status_and_persist_until(
    service: Service, project: Project, lab: LabInfo, persist_ca: PersistCA
) -> None:
    issuer_id, account = _stub_issuer(service, project, persist_ca)
    tag = secrets.token_hex(3)
    lasting, ending = f"ok{tag}.manual.test", f"soon{tag}.manual.test"
    until = (utcnow() + timedelta(days=5)).replace(microsecond=0)
    ok = build_record(lasting, issuer_domain=ISSUER_DOMAIN, account=account)
    soon = build_record(ending, issuer_domain=ISSUER_DOMAIN, account=account, persist_until=until)
    _put(lab, ok.record_name, ok.value)
    _put(lab, soon.record_name, soon.value)
    cert_id = _request(service, project, issuer_id, lasting, auto_renew=False)
    base = f"/p/{project.slug}/certificates/{cert_id}"

    detail, panel = _signed_in_get(service, base, f"{base}/persist")
    assert f'hx-get="{base}/persist"' in detail  # loaded after the page
    assert "persist-not-offered" not in panel
    block = _record(panel, lasting)
    assert 'data-status="ok"' in block
    assert _text(block, "persist-status") == "in place"
    assert _text(block, "persist-name") == ok.record_name
    assert _text(block, "persist-value") == ok.value
    assert block.count("data-copy=") == 2
    assert "persist-until" not in block

    second = _request(service, project, issuer_id, ending, auto_renew=False)
    [panel] = _signed_in_get(service, f"/p/{project.slug}/certificates/{second}/persist")
    block = _record(panel, ending)
    assert 'data-status="expires_soon"' in block
    assert _text(block, "persist-status") == "in place, expires soon"
    # the record to add is the service's (no persistUntil); the status is what DNS serves
    fresh = build_record(ending, issuer_domain=ISSUER_DOMAIN, account=account)
    assert _text(block, "persist-value") == fresh.value
    assert _text(block, "persist-until") == f"Valid until {until:%Y-%m-%d %H:%M} UTC"
    assert _text(block, "persist-detail")  # the check's words
