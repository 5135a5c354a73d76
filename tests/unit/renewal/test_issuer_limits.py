"""Rate limits per issuer, on a real (in-memory SQLite) schema with injected time: an
issuer that names no limits keeps the service settings; a preset or its own numbers
replace them; a CA without limits is never deferred or refused; an ARI renewal is not
checked where the CA exempts it (Let's Encrypt) and is checked where it does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from certautopilot.auth.models import User
from certautopilot.auth.service import Actor
from certautopilot.certificates import service as certs
from certautopilot.certificates.models import Certificate
from certautopilot.certificates.schemas import CertificateIn
from certautopilot.dns.models import DnsZone
from certautopilot.errors import RateLimited
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.issuers.schemas import IssuerPatch, RateLimitsIn
from certautopilot.projects.models import Project
from certautopilot.renewal import issuer_limits, orders
from certautopilot.renewal import scheduler as rules
from certautopilot.renewal.budget import Limits
from certautopilot.renewal.issuer_limits import Preset
from certautopilot.renewal.state_rows import ensure_state
from tests.fakes import RecordingLauncher

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
SETTINGS = Limits(duplicate_certs=2, orders_per_account=50)


def test_presets_carry_the_published_figures() -> None:
    le = issuer_limits.resolve({"preset": "letsencrypt"}, default=SETTINGS)
    assert le.limits is not None and le.source == "letsencrypt" and le.ari_renewals_exempt
    assert (le.limits.orders_per_account, le.limits.account_window) == (300, timedelta(hours=3))
    assert (le.limits.certs_per_domain, le.limits.domain_window) == (50, timedelta(days=7))
    assert (le.limits.duplicate_certs, le.limits.duplicate_window) == (5, timedelta(days=7))
    staging = issuer_limits.resolve({"preset": "letsencrypt-staging"}, default=SETTINGS).limits
    assert staging is not None
    assert (staging.orders_per_account, staging.certs_per_domain, staging.duplicate_certs) == (
        1500,
        30_000,
        30_000,
    )
    for preset in ("zerossl", "google", "none"):
        found = issuer_limits.resolve({"preset": preset}, default=SETTINGS)
        assert found.limits is None and found.source == preset
        assert not found.applies(ari_renewal=False)


def test_an_issuer_naming_no_limits_keeps_the_service_settings() -> None:
    found = issuer_limits.resolve(None, default=SETTINGS)
    assert found.limits == SETTINGS and found.source == "settings"
    assert not found.ari_renewals_exempt and found.applies(ari_renewal=True)


def test_numbers_override_the_preset_and_the_share_stays_the_services() -> None:
    stored = RateLimitsIn(preset=Preset.LETSENCRYPT, duplicate_certs=9).stored()
    found = issuer_limits.resolve(stored, default=Limits(share=0.5))
    assert found.limits is not None and found.custom
    assert (found.limits.duplicate_certs, found.limits.orders_per_account) == (9, 300)
    assert found.limits.share == 0.5
    # numbers on a preset without limits start from the service settings (a GTS quota)
    gts = issuer_limits.resolve(
        RateLimitsIn(preset=Preset.GOOGLE, orders_per_account=100).stored(), default=SETTINGS
    )
    assert gts.limits is not None and gts.limits.orders_per_account == 100
    assert gts.limits.duplicate_certs == SETTINGS.duplicate_certs


def test_bad_limits_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as bad:
        IssuerPatch.model_validate({"acme": {"rate_limits": {"preset": "boulder"}}})
    assert bad.value.errors()[0]["loc"] == ("acme", "rate_limits", "preset")
    with pytest.raises(ValidationError) as bad:
        IssuerPatch.model_validate({"acme": {"rate_limits": {"duplicate_certs": 0}}})
    assert bad.value.errors()[0]["loc"] == ("acme", "rate_limits", "duplicate_certs")
    with pytest.raises(ValidationError) as bad:
        IssuerPatch.model_validate({"acme": {"caa_identity": "not a domain"}})
    assert bad.value.errors()[0]["loc"] == ("acme", "caa_identity")


@pytest.fixture
def setup(session: Session) -> tuple[Project, Actor]:
    project = Project(slug="p", name="P")
    user = User(email="op@example.test")
    session.add_all([project, user])
    session.flush()
    session.add(DnsZone(project_id=project.id, name="example.test", provider="rfc2136", config={}))
    session.flush()
    return project, Actor(user_id=user.id, email=user.email, role="admin")


def _issuer(session: Session, project: Project, name: str, limits: dict | None) -> Issuer:
    issuer = Issuer(
        project_id=project.id,
        name=name,
        kind="acme",
        config={"directory_url": f"https://{name}/dir", "rate_limits": limits},
    )
    session.add(issuer)
    session.flush()
    return issuer


def _issued(
    session: Session, project: Project, actor: Actor, issuer: Issuer, name: str
) -> Certificate:
    cert = certs.create_certificate(
        session,
        project_id=project.id,
        body=CertificateIn(issuer=issuer.id, common_name=name),
        actor=actor,
        launcher=RecordingLauncher(),
        now=NOW - timedelta(days=1),
        limits=SETTINGS,
    )
    cert.status, cert.next_renewal_at = "issued", NOW
    cert.current_version_id = certs.latest_version(session, cert).id
    return cert


def test_a_private_ca_without_limits_is_never_refused(
    session: Session, setup: tuple[Project, Actor]
) -> None:
    project, actor = setup
    private = _issuer(session, project, "private", {"preset": "none"})
    cert = _issued(session, project, actor, private, "p.example.test")
    for hour in range(4):  # twice the service's duplicate limit, by hand
        cert.status = "issued"
        certs.renew_certificate(
            session, cert=cert, actor=actor, launcher=RecordingLauncher(),
            now=NOW + timedelta(hours=hour), limits=SETTINGS,
        )  # fmt: skip
    # the same names on an issuer with the service settings: refused at the second limit
    default = _issuer(session, project, "default", None)
    other = _issued(session, project, actor, default, "d.example.test")
    other.status = "issued"
    certs.renew_certificate(
        session, cert=other, actor=actor, launcher=RecordingLauncher(), now=NOW, limits=SETTINGS
    )
    other.status = "issued"
    with pytest.raises(RateLimited) as refused:
        certs.renew_certificate(
            session, cert=other, actor=actor, launcher=RecordingLauncher(), now=NOW,
            limits=SETTINGS,
        )  # fmt: skip
    assert refused.value.limit == "duplicate_certificates"


def test_an_issuers_own_numbers_replace_the_settings(
    session: Session, setup: tuple[Project, Actor]
) -> None:
    project, actor = setup
    own = _issuer(session, project, "own", {"preset": None, "duplicate_certs": 1})
    with pytest.raises(RateLimited) as refused:
        _issued(session, project, actor, own, "o.example.test")
        _issued(session, project, actor, own, "o.example.test")
    assert "1 certificates for exactly these names" in refused.value.detail


def _full_budget(session: Session, issuer: Issuer, cert: Certificate) -> None:
    for i in range(5):
        orders.record_order(
            session, issuer=issuer, certificate_id=cert.id, names=cert.names,
            version_id=f"filler-{issuer.name}-{i}", at=NOW - timedelta(hours=1),
        )  # fmt: skip


def test_ari_renewals_are_not_checked_where_the_ca_exempts_them(
    session: Session, setup: tuple[Project, Actor]
) -> None:
    project, actor = setup
    config = rules.Config(limits=SETTINGS)
    le = _issuer(session, project, "le", {"preset": "letsencrypt"})
    cert = _issued(session, project, actor, le, "ari.example.test")
    _full_budget(session, le, cert)  # 6 orders for these names: over the preset's 5
    # no ARI answer yet: an ordinary renewal, deferred over the budget
    launcher = RecordingLauncher()
    assert (
        rules.start_renewal(session, cert_id=cert.id, now=NOW, launcher=launcher, config=config)
        is None
    )
    assert cert.next_renewal_at is not None and cert.next_renewal_at > NOW
    # the CA answered renewalInfo: the renewal replaces the certificate through ARI
    ensure_state(session, cert.id).ari_window = {"start": NOW.isoformat(), "end": NOW.isoformat()}
    cert.next_renewal_at = NOW
    assert rules.start_renewal(session, cert_id=cert.id, now=NOW, launcher=launcher, config=config)
    # ... and by hand too
    cert.status = "issued"
    certs.renew_certificate(
        session, cert=cert, actor=actor, launcher=launcher, now=NOW, limits=SETTINGS
    )

    # the service settings do not exempt ARI renewals: still deferred
    plain = _issuer(session, project, "plain", None)
    other = _issued(session, project, actor, plain, "ari2.example.test")
    _full_budget(session, plain, other)
    ensure_state(session, other.id).ari_window = {"start": NOW.isoformat(), "end": NOW.isoformat()}
    assert (
        rules.start_renewal(session, cert_id=other.id, now=NOW, launcher=launcher, config=config)
        is None
    )


def test_an_acme_issuer_edit_stores_limits_and_caa_identity(
    session: Session, setup: tuple[Project, Actor]
) -> None:
    project, actor = setup
    issuer = _issuer(session, project, "edit", None)
    patch = IssuerPatch.model_validate(
        {"acme": {"rate_limits": {"preset": "letsencrypt", "orders_per_account": 100},
                  "caa_identity": "LetsEncrypt.org."}}
    )  # fmt: skip
    assert patch.acme is not None
    issuers.update_acme_issuer(
        session, project_id=project.id, issuer_id=issuer.id, patch=patch.acme, actor=actor
    )
    out = issuers.to_out(issuer, default_limits=SETTINGS)
    assert out.acme is not None
    assert out.acme.rate_limits["source"] == "letsencrypt" and out.acme.rate_limits["custom"]
    assert out.acme.rate_limits["limits"]["orders_per_account"] == 100
    assert out.acme.caa_identity == "letsencrypt.org" and not out.acme.caa_identity_derived
    # null clears: the service settings again; the CAA identity untouched (not given)
    clear = IssuerPatch.model_validate({"acme": {"rate_limits": None}})
    assert clear.acme is not None
    issuers.update_acme_issuer(
        session, project_id=project.id, issuer_id=issuer.id, patch=clear.acme, actor=actor
    )
    out = issuers.to_out(issuer, default_limits=SETTINGS)
    assert out.acme is not None and out.acme.rate_limits["source"] == "settings"
    assert out.acme.rate_limits["limits"]["duplicate_certs"] == 2
    assert out.acme.caa_identity == "letsencrypt.org"


def test_caa_identity_is_derived_where_known() -> None:
    assert (
        issuers.derived_caa_identity("https://acme-v02.api.letsencrypt.org/directory")
        == "letsencrypt.org"
    )
    assert issuers.derived_caa_identity("https://acme.zerossl.com/v2/DV90") == "sectigo.com"
    assert issuers.derived_caa_identity("https://dv.acme-v02.api.pki.goog/directory") == "pki.goog"
    assert issuers.derived_caa_identity("https://127.0.0.1:14000/dir") is None
    assert (
        issuers.derived_caa_identity("https://127.0.0.1:14000/dir", ("Pebble.Example",))
        == "pebble.example"
    )
