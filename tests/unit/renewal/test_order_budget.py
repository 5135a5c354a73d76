"""Every new ACME order counted once, and the budget read from the count, on a real
(in-memory SQLite) schema with injected time: first issuances and renewals by hand are
counted and refused (429) over the limit; scheduled renewals defer; multi-domain orders
count once per account; other CAs' certificates do not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certautopilot.auth.models import User
from certautopilot.auth.service import Actor
from certautopilot.certificates import service as certs
from certautopilot.certificates.models import Certificate
from certautopilot.certificates.schemas import CertificateIn
from certautopilot.dns.models import DnsZone
from certautopilot.errors import RateLimited
from certautopilot.issuers.models import Issuer
from certautopilot.projects.models import Project
from certautopilot.renewal import orders
from certautopilot.renewal import scheduler as rules
from certautopilot.renewal.budget import Limits
from certautopilot.renewal.models import OrderLog
from tests.fakes import RecordingLauncher

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)


@pytest.fixture
def setup(session: Session) -> tuple[Project, Issuer, Actor]:
    project = Project(slug="p", name="P")
    user = User(email="op@example.test")
    session.add_all([project, user])
    session.flush()
    issuer = Issuer(
        project_id=project.id, name="ca", kind="acme", config={"directory_url": "https://a/dir"}
    )
    zone = DnsZone(project_id=project.id, name="example.test", provider="rfc2136", config={})
    session.add_all([issuer, zone])
    session.flush()
    return project, issuer, Actor(user_id=user.id, email=user.email, role="operator")


def _create(
    session: Session, setup: tuple[Project, Issuer, Actor], name: str, now: datetime, **kw: object
) -> Certificate:
    project, issuer, actor = setup
    return certs.create_certificate(
        session,
        project_id=project.id,
        body=CertificateIn(issuer=issuer.id, common_name=name, **kw),  # type: ignore[arg-type]
        actor=actor,
        launcher=RecordingLauncher(),
        now=now,
        limits=LIMITS,
    )


LIMITS = Limits(duplicate_certs=2, orders_per_account=5)


def _logged(session: Session, cert_id: str) -> int:
    return (
        session.scalar(
            select(func.count(func.distinct(OrderLog.version_id))).where(
                OrderLog.certificate_id == cert_id
            )
        )
        or 0
    )


def test_first_issuance_and_renewal_by_hand_count_and_the_third_is_refused(
    session: Session, setup: tuple[Project, Issuer, Actor]
) -> None:
    cert = _create(session, setup, "dup.example.test", NOW)
    assert _logged(session, cert.id) == 1
    cert.status = "issued"  # as the workflow leaves it
    certs.renew_certificate(
        session, cert=cert, actor=setup[2], launcher=RecordingLauncher(), now=NOW, limits=LIMITS
    )
    assert _logged(session, cert.id) == 2
    cert.status = "issued"
    with pytest.raises(RateLimited) as refused:
        certs.renew_certificate(
            session,
            cert=cert,
            actor=setup[2],
            launcher=RecordingLauncher(),
            now=NOW + timedelta(hours=1),
            limits=LIMITS,
        )
    assert refused.value.status == 429 and refused.value.limit == "duplicate_certificates"
    assert refused.value.retry_at == (NOW + timedelta(days=7)).isoformat()
    assert refused.value.retry_after == pytest.approx((timedelta(days=7, hours=-1)).total_seconds())
    # the same names again as a new certificate: the same limit (it is about the names)
    with pytest.raises(RateLimited):
        _create(session, setup, "dup.example.test", NOW + timedelta(hours=1))
    # a week later it fits again
    cert.status = "issued"
    certs.renew_certificate(
        session,
        cert=cert,
        actor=setup[2],
        launcher=RecordingLauncher(),
        now=NOW + timedelta(days=7, seconds=1),
        limits=LIMITS,
    )


def test_recording_is_idempotent_per_version_and_one_order_per_account(
    session: Session, setup: tuple[Project, Issuer, Actor]
) -> None:
    _, issuer, _ = setup
    names = ["a.example.test", "b.other.test"]  # two registered domains: two rows, one order
    assert orders.record_order(
        session, issuer=issuer, certificate_id="c1", names=names, version_id="v1", at=NOW
    )
    # a step that runs again, or finds the API's row: nothing more
    assert not orders.record_order(
        session, issuer=issuer, certificate_id="c1", names=names, version_id="v1", at=NOW
    )
    assert session.scalar(select(func.count(OrderLog.id))) == 2
    one = Limits(orders_per_account=2)
    verdict = orders.verdict(
        session, issuer=issuer, names=["x.example.test"], now=NOW, limits=one, share=1
    )
    assert verdict.allowed  # one order so far, not two
    orders.record_order(
        session, issuer=issuer, certificate_id="c2", names=["x.example.test"], version_id="v2",
        at=NOW,
    )  # fmt: skip
    verdict = orders.verdict(
        session, issuer=issuer, names=["y.example.test"], now=NOW, limits=one, share=1
    )
    assert not verdict.allowed and verdict.limit == "orders_per_account"
    assert verdict.retry_at == NOW + one.account_window
    # the two-domain order counts once for its exact names too (two rows, one order)
    twice = Limits(duplicate_certs=2)
    assert orders.verdict(
        session, issuer=issuer, names=list(reversed(names)), now=NOW, limits=twice, share=1
    ).allowed
    orders.record_order(
        session, issuer=issuer, certificate_id="c1", names=names, version_id="v3", at=NOW
    )
    found = orders.verdict(session, issuer=issuer, names=names, now=NOW, limits=twice, share=1)
    assert not found.allowed and found.limit == "duplicate_certificates"


def test_an_adcs_issuer_is_not_counted(
    session: Session, setup: tuple[Project, Issuer, Actor]
) -> None:
    project = setup[0]
    adcs = Issuer(project_id=project.id, name="corp", kind="adcs", config={})
    session.add(adcs)
    session.flush()
    assert not orders.record_order(
        session, issuer=adcs, certificate_id="c", names=["a.corp"], version_id="v", at=NOW
    )
    orders.require_budget(
        session, issuer=adcs, names=["a.corp"], now=NOW, limits=Limits(duplicate_certs=1)
    )


def test_another_cas_certificates_do_not_count_against_this_one(
    session: Session, setup: tuple[Project, Issuer, Actor]
) -> None:
    project, issuer, _ = setup
    other = Issuer(
        project_id=project.id,
        name="other-ca",
        kind="acme",
        config={"directory_url": "https://b/dir"},
    )
    session.add(other)
    session.flush()
    for i in range(2):
        orders.record_order(
            session, issuer=other, certificate_id="c", names=["s.example.test"],
            version_id=f"v{i}", at=NOW,
        )  # fmt: skip
    limits = Limits(duplicate_certs=2, certs_per_domain=2)
    assert orders.verdict(
        session, issuer=issuer, names=["s.example.test"], now=NOW, limits=limits, share=1
    ).allowed
    found = orders.verdict(
        session, issuer=other, names=["s.example.test"], now=NOW, limits=limits, share=1
    )
    assert not found.allowed and found.limit == "certs_per_domain"


def test_scheduled_renewal_counts_once_and_defers_over_the_budget(
    session: Session, setup: tuple[Project, Issuer, Actor]
) -> None:
    cert = _create(session, setup, "sched.example.test", NOW - timedelta(days=1))
    cert.status, cert.next_renewal_at = "issued", NOW
    cert.current_version_id = certs.latest_version(session, cert).id
    config = rules.Config(limits=Limits(duplicate_certs=3))  # scheduled: 90 % of 3 -> 2
    launcher = RecordingLauncher()
    assert rules.start_renewal(session, cert_id=cert.id, now=NOW, launcher=launcher, config=config)
    assert _logged(session, cert.id) == 2
    cert.status, cert.next_renewal_at = "issued", NOW + timedelta(minutes=5)
    later = NOW + timedelta(minutes=5)
    assert (
        rules.start_renewal(session, cert_id=cert.id, now=later, launcher=launcher, config=config)
        is None
    )
    assert cert.next_renewal_at == NOW - timedelta(days=1) + timedelta(days=7)  # deferred
    assert _logged(session, cert.id) == 2
    # a person may still use the last one
    certs.renew_certificate(
        session, cert=cert, actor=setup[2], launcher=launcher, now=later,
        limits=Limits(duplicate_certs=3),
    )  # fmt: skip
    assert _logged(session, cert.id) == 3


def test_a_request_waiting_for_approval_is_checked_but_counted_only_when_ordered(
    session: Session, setup: tuple[Project, Issuer, Actor]
) -> None:
    from certautopilot.policy.models import ProjectPolicy

    project = setup[0]
    session.add(ProjectPolicy(project_id=project.id, rules={"approval_required": True}))
    session.flush()
    cert = _create(session, setup, "gated.example.test", NOW)
    assert cert.status == "awaiting_approval" and _logged(session, cert.id) == 0


def test_rate_limited_survives_pickling() -> None:
    """DBOS pickles step exceptions: every constructor argument goes to ``super()``."""
    import pickle

    error = RateLimited("full", "certs_per_domain", NOW.isoformat(), 60.0)
    again = pickle.loads(pickle.dumps(error))
    assert (again.detail, again.limit, again.retry_at, again.retry_after) == (
        "full",
        "certs_per_domain",
        NOW.isoformat(),
        60.0,
    )
    assert again.status == 429
