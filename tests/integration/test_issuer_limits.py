"""Rate limits per issuer through the API and the web settings, on the real lab: an issuer's
own limit refuses a renewal the service settings would allow (429, the CA not asked), its
preset "none" lets it through, a bad edit is a 422 naming the field, and the issuers page
shows and edits the limits and the CAA identity."""

from __future__ import annotations

from sqlalchemy import select

from certautopilot.audit.models import AuditEvent
from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from tests.conftest import Project, Service, issue_one, sign_in_client


def _issuer(service: Service, p: Project) -> dict:
    body: dict = service.ok("GET", f"/projects/{p.slug}/issuers/{p.issuer_id}")
    return body


def test_an_issuers_own_limits_apply_and_none_lifts_them(
    service: Service, project: Project
) -> None:
    p = project
    shown = _issuer(service, p)["acme"]
    assert shown["rate_limits"]["source"] == "settings"  # names none: the service settings
    assert shown["rate_limits_preset"] is None and shown["caa_identity"] is None

    edited = service.ok(
        "PATCH",
        f"/projects/{p.slug}/issuers/{p.issuer_id}",
        json={"acme": {"rate_limits": {"preset": "letsencrypt", "duplicate_certs": 1},
                       "caa_identity": "pebble.lab.test"}},
    )["acme"]  # fmt: skip
    assert edited["rate_limits"]["source"] == "letsencrypt" and edited["rate_limits"]["custom"]
    assert edited["rate_limits"]["limits"]["duplicate_certs"] == 1
    assert edited["rate_limits"]["ari_renewals_exempt"] is True
    assert edited["caa_identity"] == "pebble.lab.test" and not edited["caa_identity_derived"]

    cid = issue_one(service, p, "limits.example.test")
    refused = service.call("POST", f"/projects/{p.slug}/certificates/{cid}/renew")
    assert refused.status_code == 429, refused.text
    assert refused.json()["limit"] == "duplicate_certificates"
    assert "1 certificates for exactly these names" in refused.json()["detail"]

    service.ok(
        "PATCH",
        f"/projects/{p.slug}/issuers/{p.issuer_id}",
        json={"acme": {"rate_limits": {"preset": "none"}}},
    )
    assert _issuer(service, p)["acme"]["rate_limits"]["limits"] is None
    assert _issuer(service, p)["acme"]["caa_identity"] == "pebble.lab.test"  # kept
    service.ok("POST", f"/projects/{p.slug}/certificates/{cid}/renew", 202)
    assert service.wait_for(p.slug, cid, ("issued", "failed"))["status"] == "issued"

    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            changed = session.scalars(
                select(AuditEvent.detail)
                .where(AuditEvent.subject_id == p.issuer_id, AuditEvent.type == "issuer.updated")
                .order_by(AuditEvent.id)
            ).all()
    finally:
        engine.dispose()
    assert [d["changed"] for d in changed] == [["caa_identity", "rate_limits"], ["rate_limits"]]


def test_bad_limits_are_422_naming_the_field(service: Service, project: Project) -> None:
    url = f"/projects/{project.slug}/issuers/{project.issuer_id}"
    for body, field in (
        ({"acme": {"rate_limits": {"preset": "boulder"}}}, "acme.rate_limits.preset"),
        (
            {"acme": {"rate_limits": {"orders_per_account": 0}}},
            "acme.rate_limits.orders_per_account",
        ),
        ({"acme": {"caa_identity": "no spaces.example"}}, "acme.caa_identity"),
    ):
        response = service.call("PATCH", url, json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    # an AD CS edit on an ACME issuer: 409, nothing changed
    wrong = service.call("PATCH", url, json={"adcs": {"templates": ["WebServer"]}})
    assert wrong.status_code == 409, wrong.text


def test_the_issuers_page_shows_and_edits_limits_and_caa(
    service: Service, project: Project
) -> None:
    p, client = project, service.client
    try:
        csrf = sign_in_client(service)
        page = client.get(f"/p/{p.slug}/settings/issuers")
        assert page.status_code == 200
        assert (
            'data-testid="issuer-limits-source" class="badge muted">service settings' in page.text
        )
        prefix = f"edit_{p.issuer_id}_"
        bad = client.post(
            f"/p/{p.slug}/settings/issuers/{p.issuer_id}/acme",
            data={"csrf": csrf, prefix + "rl_preset": "letsencrypt",
                  prefix + "rl_duplicate_certs": "0"},
        )  # fmt: skip
        assert bad.status_code == 422
        assert f'data-field="{prefix}rl_duplicate_certs"' in bad.text
        saved = client.post(
            f"/p/{p.slug}/settings/issuers/{p.issuer_id}/acme",
            data={"csrf": csrf, prefix + "rl_preset": "letsencrypt-staging",
                  prefix + "rl_ari_renewals_exempt": "no", prefix + "caa_identity": "ca.lab.test"},
            follow_redirects=False,
        )  # fmt: skip
        assert saved.status_code == 303, saved.text
        shown = client.get(saved.headers["location"]).text
        assert 'data-testid="issuer-saved"' in shown
        assert ">letsencrypt-staging<" in shown.replace("</span>", "<")
        assert "1500 orders / 3.0 h" in shown and "ARI renewals checked" in shown
        assert 'data-testid="issuer-caa">ca.lab.test<' in shown
    finally:
        client.cookies.clear()
    acme = _issuer(service, p)["acme"]
    assert acme["rate_limits"]["source"] == "letsencrypt-staging"
    assert acme["rate_limits"]["ari_renewals_exempt"] is False
