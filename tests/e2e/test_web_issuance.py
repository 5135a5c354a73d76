"""Browser: sign in, request a certificate on the New Certificate page, watch it issue;
a manual-DNS certificate completed by publishing the record and clicking "I've added it"."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from certautopilot.dns.providers.rfc2136 import RFC2136Config, RFC2136Provider
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import pebble_cert_status
from tests.conftest import Project, Service
from tests.e2e.conftest import go, screenshot, sign_in, web_user

pytestmark = pytest.mark.lab


def test_sign_in_new_certificate_issued_with_timeline(
    service: Service, project: Project, new_page: Any
) -> None:
    admin = web_user(service, "admin@example.test")
    page = new_page()
    page.goto(f"/p/{project.slug}/certificates")
    assert "/login?next=" in page.url  # anonymous users are sent to sign in, then back
    sign_in(page, admin, goto=False)
    assert page.url.endswith(f"/p/{project.slug}/certificates")

    page.get_by_role("link", name="New certificate").first.click()
    name = f"web-{uuid.uuid4().hex[:6]}.example.test"
    page.get_by_label("Common name").fill(name)
    page.get_by_label("Subject alternative names").fill(f"www.{name}\napi.{name}, cdn.{name}")
    page.locator("[data-testid=preflight-ok]").wait_for()
    assert "4 names" in page.locator("#preflight-summary").inner_text()
    assert page.get_by_label("Auto-renew").is_checked()
    assert page.locator("input[name=key_type][value=ecdsa-p256]").is_checked()
    assert "The right default" in page.content()
    screenshot(page, "new-certificate-form")
    page.locator("#submit").click()

    page.wait_for_url(f"**/p/{project.slug}/certificates/*")
    page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    timeline = page.locator("[data-testid=timeline]").inner_text()
    assert "cert.requested" in timeline and "cert.issued" in timeline
    assert len(page.locator("[data-testid=fingerprint]").inner_text()) >= 64
    assert name in page.locator("[data-testid=names]").inner_text()
    assert page.get_by_role("link", name="Private key").count() == 1  # admin
    screenshot(page, "certificate-issued-detail")
    detail_url = page.url.split("?")[0]
    fullchain = page.request.get(detail_url + "/download/fullchain.pem")
    assert fullchain.ok and fullchain.text().count("BEGIN CERTIFICATE") >= 2
    key = page.request.get(detail_url + "/download/key.pem")
    assert key.ok and "PRIVATE KEY" in key.text()
    serial = page.locator("dl.facts dd.mono").nth(1).inner_text()

    page.get_by_role("button", name="Renew now").click()
    page.wait_for_url("**flash=renew")
    page.wait_for_function(
        "s => document.querySelector('#live[data-status=issued]') &&"
        " document.querySelectorAll('dl.facts dd.mono')[1].innerText !== s",
        arg=serial,
        timeout=90_000,
    )
    assert "cert.renewal_requested" in page.locator("[data-testid=timeline]").inner_text()

    page.get_by_label("Revocation reason").select_option("superseded")
    page.get_by_role("button", name="Revoke").click()
    assert page.locator("#live").get_attribute("data-status") == "issued"  # box not ticked
    page.get_by_label("Yes, revoke this certificate").check()
    page.get_by_role("button", name="Revoke").click()
    page.locator("#live[data-status=revoked]").wait_for()
    assert "cert.revoked" in page.locator("[data-testid=timeline]").inner_text()
    screenshot(page, "certificate-revoked")

    go(page, page.get_by_role("link", name="Certificates").first)
    page.get_by_label("Name").fill(name)
    go(page, page.get_by_role("button", name="Filter"))
    row = page.locator("tbody tr")
    assert row.count() == 1 and "revoked" in row.inner_text()
    page.get_by_label("Status").select_option("issued")
    go(page, page.get_by_role("button", name="Filter"))
    assert "No certificates match" in page.locator("tbody").inner_text()
    page.get_by_label("Status").select_option("")
    page.get_by_label("Expiring within").select_option("7")
    go(page, page.get_by_role("button", name="Filter"))
    assert "No certificates match" in page.locator("tbody").inner_text()  # valid ~90 days
    page.get_by_label("Expiring within").select_option("90")
    go(page, page.get_by_role("button", name="Filter"))
    assert page.locator("tbody tr").count() == 1
    screenshot(page, "inventory")


def _publish(lab: LabInfo, name: str, value: str) -> None:
    RFC2136Provider(
        RFC2136Config(
            server="127.0.0.1",
            port=lab.dns_port,
            tsig_name=lab.tsig_name,
            tsig_algorithm=lab.tsig_algorithm,
            tsig_secret=lab.tsig_secret,
        )
    ).publish_txt("manual.test", name, value, 60)


def test_manual_dns_completed_with_ive_added_it(
    service: Service, project: Project, lab: LabInfo, new_page: Any
) -> None:
    admin = web_user(service, "admin@example.test")
    page = new_page()
    sign_in(page, admin)
    page.goto(f"/p/{project.slug}/certificates/new")
    name = f"m{uuid.uuid4().hex[:6]}.manual.test"
    page.get_by_label("Common name").fill(name)
    page.locator("[data-testid=autorenew-off]").wait_for()
    page.locator("#submit").click()

    page.locator("#live[data-status=awaiting_dns]").wait_for(timeout=60_000)
    box = page.locator("[data-testid=manual-dns]")
    txt_name = box.locator("[data-testid=txt-name]").inner_text().strip()
    txt_value = box.locator("[data-testid=txt-value]").inner_text().strip()
    assert txt_name == f"_acme-challenge.{name}"
    assert len(txt_value) == 43
    assert "Auto-renew is off" in box.inner_text() and "Manual DNS" in box.inner_text()
    assert box.get_by_role("button", name="Copy").count() == 2

    # Clicked before the record exists: the page says so and the job keeps waiting.
    page.get_by_role("button", name="I've added it").click()
    page.locator("[data-testid=dns-message]", has_text="Not visible yet").wait_for(timeout=30_000)
    assert page.locator("#live").get_attribute("data-status") == "awaiting_dns"
    screenshot(page, "manual-dns-not-visible-yet")

    _publish(lab, txt_name, txt_value)
    page.get_by_role("button", name="I've added it").click()
    page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    timeline = page.locator("[data-testid=timeline]").inner_text()
    assert "dns.manual.not_visible" in timeline and "dns.manual.confirmed" in timeline
    screenshot(page, "manual-dns-issued")


def test_bring_your_own_csr(service: Service, project: Project, new_page: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    name = f"byo-{uuid.uuid4().hex[:6]}.example.test"
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.DNSName("www." + name)]),
            critical=False,
        )
        .sign(key, hashes.SHA384())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    page = new_page()
    sign_in(page, web_user(service, "admin@example.test"))
    page.goto(f"/p/{project.slug}/certificates/new")
    assert not page.get_by_label("PEM-encoded PKCS#10 request").is_visible()
    page.get_by_label("Bring your own CSR").check()
    page.get_by_label("PEM-encoded PKCS#10 request").fill("not a CSR")
    page.locator("#check-csr_pem .err").wait_for()  # a broken CSR is named next to its field
    page.get_by_label("PEM-encoded PKCS#10 request").fill(csr)
    page.locator("[data-testid=preflight-ok]").wait_for()
    summary = page.locator("#preflight-summary").inner_text()
    assert "ecdsa-p384 from your CSR" in summary and "2 names" in summary
    assert "CSR" in page.locator("[data-testid=autorenew-off]").inner_text()
    screenshot(page, "byo-csr-form")
    page.locator("#submit").click()
    page.locator("#live[data-status=issued]").wait_for(timeout=90_000)
    assert "(your CSR)" in page.content()
    assert page.get_by_role("link", name="Private key").count() == 0  # the service has none
    screenshot(page, "byo-csr-issued")


def test_revoke_offers_the_earlier_versions_still_valid(
    service: Service, project: Project, lab: LabInfo, new_page: Any
) -> None:
    p = project.slug
    cid = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": f"rv-{uuid.uuid4().hex[:6]}.example.test",
        },
    )["id"]
    v1 = service.wait_for(p, cid, ("issued",))["current"]["serial"]
    service.ok("POST", f"/projects/{p}/certificates/{cid}/renew", 202)
    v2 = service.wait_for(p, cid, ("issued", "failed"))["current"]["serial"]
    admin = web_user(service, f"rv-{uuid.uuid4().hex[:6]}@example.test", project=p, role="admin")
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, admin)
    page.goto(f"/p/{p}/certificates/{cid}")
    offer = page.locator("[data-testid=earlier-valid]")
    assert "1 earlier version still valid" in offer.inner_text()
    assert v1 in page.locator("[data-testid=revoke-form]").inner_text()
    screenshot(page, "revoke-earlier-versions")
    page.get_by_label("Revocation reason").select_option("keyCompromise")
    page.locator("[data-testid=revoke-all-versions]").check()
    page.get_by_label("Yes, revoke this certificate. This cannot be undone.").check()
    page.get_by_role("button", name="Revoke").click()
    flash = page.locator("[data-testid=revoked-flash]")
    flash.wait_for()
    assert flash.inner_text().strip() == "Revoked version 2, version 1."
    assert page.locator("[data-testid=revoke-form]").count() == 0  # nothing left to revoke
    assert [pebble_cert_status(lab, s)["Status"] for s in (v1, v2)] == ["Revoked", "Revoked"]
