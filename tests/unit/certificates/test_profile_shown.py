"""The ACME profile a certificate asks for is shown on the certificate (GET, list) and in
the preflight result; preflight refuses one the CA's directory does not advertise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from certautopilot.auth.models import User
from certautopilot.auth.service import Actor
from certautopilot.certificates import service as certs
from certautopilot.certificates.preflight import preflight
from certautopilot.certificates.schemas import CertificateIn
from certautopilot.db import models
from certautopilot.dns.models import DnsZone
from certautopilot.errors import InvalidInput
from certautopilot.issuers.acme.client import clear_client_cache
from certautopilot.issuers.models import Issuer
from certautopilot.projects.models import Project
from tests.fakes import RecordingLauncher
from tests.unit.issuers.acme._acme_stub_server import Reply, StubCA, stub_ca


@pytest.fixture
def ca() -> Iterator[StubCA]:
    """A local CA whose directory advertises one profile."""
    with stub_ca() as stub:
        stub.script(
            "/dir",
            Reply(
                body={"newOrder": stub.url("/order"), "meta": {"profiles": {"shortlived": "6d"}}},
                nonce=False,
            ),
        )
        yield stub
    clear_client_cache()


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    models.Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_profile_in_preflight_and_on_the_certificate(session: Session, ca: StubCA) -> None:
    project, user = Project(slug="p", name="P"), User(email="op@example.test")
    session.add_all([project, user])
    session.flush()
    issuer = Issuer(
        project_id=project.id, name="ca", kind="acme", config={"directory_url": ca.directory_url}
    )
    session.add_all(
        [issuer, DnsZone(project_id=project.id, name="example.test", provider="rfc2136")]
    )
    session.flush()
    body = CertificateIn(issuer=issuer.id, common_name="a.example.test", acme_profile="shortlived")
    assert preflight(session, project_id=project.id, body=body).out().acme_profile == "shortlived"
    plain = CertificateIn(issuer=issuer.id, common_name="b.example.test")
    assert preflight(session, project_id=project.id, body=plain).out().acme_profile is None
    with pytest.raises(InvalidInput) as refused:
        preflight(
            session,
            project_id=project.id,
            body=CertificateIn(issuer=issuer.id, common_name="c.example.test", acme_profile="tls"),
        )
    assert refused.value.errors[0][0] == "acme_profile"

    actor = Actor(user_id=user.id, email=user.email, role="operator")
    made = [
        certs.create_certificate(
            session,
            project_id=project.id,
            body=b,
            actor=actor,
            launcher=RecordingLauncher(),
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for b in (body, plain)
    ]
    assert certs.to_out(session, made[0]).acme_profile == "shortlived"
    assert [o.acme_profile for o in certs.to_out_many(session, made)] == ["shortlived", None]


def test_policy_restricts_the_profiles_a_certificate_may_ask_for(
    session: Session, ca: StubCA
) -> None:
    from certautopilot.policy.models import ProjectPolicy
    from certautopilot.policy.service import PolicyViolation

    project, user = Project(slug="p", name="P"), User(email="op@example.test")
    session.add_all([project, user])
    session.flush()
    issuer = Issuer(
        project_id=project.id, name="ca", kind="acme", config={"directory_url": ca.directory_url}
    )
    session.add_all(
        [issuer, DnsZone(project_id=project.id, name="example.test", provider="rfc2136")]
    )
    session.add(ProjectPolicy(project_id=project.id, rules={"allowed_acme_profiles": ["classic"]}))
    session.flush()
    body = CertificateIn(issuer=issuer.id, common_name="a.example.test", acme_profile="shortlived")
    warned = preflight(session, project_id=project.id, body=body).out().warnings
    assert [(w.code, w.field) for w in warned] == [("acme_profile_not_allowed", "acme_profile")]
    assert "allowed: classic" in warned[0].message
    # the CA's default (no profile) is always allowed
    plain = CertificateIn(issuer=issuer.id, common_name="b.example.test")
    assert preflight(session, project_id=project.id, body=plain).out().warnings == []
    actor = Actor(user_id=user.id, email=user.email, role="operator")
    with pytest.raises(PolicyViolation) as refused:
        certs.create_certificate(
            session,
            project_id=project.id,
            body=body,
            actor=actor,
            launcher=RecordingLauncher(),
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )
    assert refused.value.errors[0][0] == "acme_profile"
