"""AD CS issuers through the API: checked at the CA on create and edit (TLS, 401, unknown
template), credentials never returned, and the lifecycle rules (revoke, renew, input)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from certautopilot.crypto import keys
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.issuers.models import Issuer
from certautopilot_lab.adcs_double import AdcsDouble
from tests.conftest import Service
from tests.integration._adcs_fixture import (
    PASSWORD,
    add_issuer,
    issuer_body,
    new_project,
    request_cert,
)


@pytest.fixture(scope="module")
def double() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"basic", "ntlm"}) as d:
        yield d


def _refused(service: Service, slug: str, body: dict[str, Any]) -> dict[str, Any]:
    response = service.call("POST", f"/projects/{slug}/issuers", json=body)
    assert response.status_code == 422, response.text
    problem: dict[str, Any] = response.json()
    return problem


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_wrong_password_is_a_clear_422(service: Service, double: AdcsDouble, auth: str) -> None:
    slug = new_project(service)
    problem = _refused(service, slug, issuer_body(double, auth, password="not-it"))
    assert problem["errors"][0]["field"] == "adcs.password"
    assert "refused the credentials" in problem["detail"]
    assert "401" in problem["detail"]
    assert "not-it" not in str(problem)
    assert service.ok("GET", f"/projects/{slug}/issuers") == []


def test_unknown_template_is_named(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    problem = _refused(service, slug, issuer_body(double, templates=["WebServer", "Nope"]))
    assert problem["errors"] == [
        {
            "field": "adcs.templates",
            "message": "unknown template 'Nope': the CA offers WebServer, WebServerApproval "
            "to this account",
        }
    ]


def test_untrusted_tls_is_named(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    other = AdcsDouble()  # another CA: its root does not vouch for this server
    try:
        problem = _refused(service, slug, issuer_body(double, ca_bundle_pem=other.ca_bundle_pem))
    finally:
        other.stop()
    assert problem["errors"][0]["field"] == "adcs.ca_bundle_pem"
    assert problem["detail"].startswith("adcs.ca_bundle_pem: TLS failed: TLS: the CA's server")


def test_bad_input_before_any_network(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    injected = issuer_body(double, templates=["WebServer\r\nSAN:dns=evil.example"])
    assert service.call("POST", f"/projects/{slug}/issuers", json=injected).status_code == 422
    no_password = issuer_body(double, "ntlm", password=None)
    assert service.call("POST", f"/projects/{slug}/issuers", json=no_password).status_code == 422
    mixed = {**issuer_body(double), "acme": {"directory_url": "https://x/dir"}}
    assert service.call("POST", f"/projects/{slug}/issuers", json=mixed).status_code == 422
    http = issuer_body(double, url=double.url.replace("https://", "http://"))
    assert _refused(service, slug, http)["errors"][0]["field"] == "adcs.url"


def test_kerberos_says_plainly_what_is_missing(service: Service, double: AdcsDouble) -> None:
    try:
        import gssapi  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gssapi is installed: without a KDC the message differs")
    slug = new_project(service)
    problem = _refused(service, slug, issuer_body(double, "kerberos"))
    assert problem["errors"][0]["field"] == "adcs.auth"
    assert "gssapi" in problem["detail"] and "keytab" in problem["detail"]


def test_credentials_are_stored_encrypted_and_never_returned(
    service: Service, double: AdcsDouble
) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "ntlm")
    body = service.ok("GET", f"/projects/{slug}/issuers/{issuer_id}")
    assert body["kind"] == "adcs"
    adcs = body["adcs"]
    assert adcs["auth"] == "ntlm" and adcs["has_password"] and adcs["templates_checked"]
    assert adcs["templates"] == ["WebServer", "WebServerApproval"]
    assert PASSWORD not in str(body)
    assert PASSWORD not in str(service.ok("GET", f"/projects/{slug}/issuers"))
    created = request_cert(service, slug, issuer_id, "secret.corp.test")
    assert service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)["status"] == (
        "issued"
    )
    engine = make_engine(service.settings)
    try:
        with make_sessionmaker(engine)() as session:
            issuer = session.get(Issuer, issuer_id)
            assert issuer is not None and PASSWORD not in str(issuer.config)
        # every row of every table, ours and DBOS's (step inputs, outputs, errors)
        inspector = sa.inspect(engine)
        schemas = [None] if service.settings.is_sqlite else ["public", "dbos"]
        with engine.connect() as conn:
            for schema in schemas:
                for table in inspector.get_table_names(schema=schema):
                    t = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)
                    for row in conn.execute(sa.select(t)):
                        text = " ".join(
                            bytes(v).decode("latin-1")
                            if isinstance(v, bytes | memoryview)
                            else str(v)
                            for v in row
                        )
                        assert PASSWORD not in text, f"password in {table}"
    finally:
        engine.dispose()
    logs = "\n".join(p.read_text(errors="replace") for p in service.log_dir.glob("*.log"))
    assert PASSWORD not in logs


def test_edit_is_checked_at_the_ca(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "basic")
    path = f"/projects/{slug}/issuers/{issuer_id}"
    wrong = service.call("PATCH", path, json={"adcs": {"password": "rotated-wrong"}})
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "adcs.password"
    unknown = service.call("PATCH", path, json={"adcs": {"templates": ["Gone"]}})
    assert unknown.status_code == 422
    # a kept password is reused for the check: only the templates and interval change
    body = service.ok(
        "PATCH",
        path,
        json={"adcs": {"templates": ["WebServerApproval"], "check_interval_seconds": 60}},
    )
    assert body["adcs"]["templates"] == ["WebServerApproval"]
    assert body["adcs"]["check_interval_seconds"] == 60
    body = service.ok("PATCH", path, json={"adcs": {"auth": "ntlm", "password": PASSWORD}})
    assert body["adcs"]["auth"] == "ntlm"
    # every edit stored the password under a fresh DEK; the replaced ciphertexts are gone
    engine = make_engine(service.settings)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.scalars(
                sa.select(StoredSecret).where(
                    StoredSecret.owner_table == "issuers", StoredSecret.owner_id == issuer_id
                )
            ).all()
            issuer = session.get(Issuer, issuer_id)
            assert issuer is not None
            assert [r.id for r in rows] == [issuer.config["password_secret_id"]]
    finally:
        engine.dispose()
    # ... and the worker signs in with the one that is left (WebServerApproval: pending at the CA)
    created = request_cert(service, slug, issuer_id, "edited.corp.test")
    pending = service.wait_for(slug, created["id"], ("awaiting_ca", "failed"))
    assert pending["status"] == "awaiting_ca", pending["error"]


def test_revoke_is_409_unless_record_only(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "basic")
    created = request_cert(service, slug, issuer_id, "revoke.corp.test")
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "issued", body["error"]
    path = f"/projects/{slug}/certificates/{created['id']}/revoke"
    refused = service.call("POST", path, json={"reason": "keyCompromise"})
    assert refused.status_code == 409
    assert "operator action on the CA" in refused.json()["detail"]
    assert body["current"]["serial"] in refused.json()["detail"]
    revoked = service.ok("POST", path, json={"reason": "keyCompromise", "record_only": True})
    assert revoked["status"] == "revoked"
    events = [
        e for e in service.timeline(slug, created["id"])["events"] if e["type"] == "cert.revoked"
    ]
    assert events[0]["detail"]["record_only"] is True
    assert events[0]["actor"] == "admin@example.test"


def test_renewal_uses_the_same_template(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "basic")
    created = request_cert(service, slug, issuer_id, "renew.corp.test")
    first = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert first["status"] == "issued", first["error"]
    service.ok("POST", f"/projects/{slug}/certificates/{created['id']}/renew", 202)
    second = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert second["status"] == "issued", second["error"]
    assert second["current"]["serial"] != first["current"]["serial"]
    issued = [
        e["detail"]
        for e in service.timeline(slug, created["id"])["events"]
        if e["type"] == "adcs.request.issued"
    ]
    assert [d["template"] for d in issued] == ["WebServer", "WebServer"]


def test_certificate_input_on_an_adcs_issuer(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "basic")
    base = f"/projects/{slug}/certificates"
    wrong = service.call(
        "POST",
        base,
        json={"issuer": issuer_id, "common_name": "x.corp.test", "adcs_template": "User"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "adcs_template"
    overrides = service.call(
        "POST",
        base,
        json={
            "issuer": issuer_id,
            "common_name": "x.corp.test",
            "challenge_overrides": {"x.corp.test": {"zone": "corp.test"}},
        },
    )
    assert overrides.status_code == 422
    preflight = service.ok(
        "POST", base + "/preflight", json={"issuer": issuer_id, "common_name": "x.corp.test"}
    )
    assert preflight["sans"] == ["x.corp.test"]


def test_an_unexpected_page_fails_the_job_with_an_excerpt(
    service: Service, double: AdcsDouble
) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "basic")
    double.foreign_page = (
        "<html><head><title>Sign in</title></head><body><form><input name=u></form>"
        "<p>Please sign in to continue.</p>" + "<p>padding</p>" * 500 + "</body></html>"
    )
    try:
        created = request_cert(service, slug, issuer_id, "proxy.corp.test")
        body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    finally:
        double.foreign_page = None
    assert body["status"] == "failed"
    assert body["error"]["type"] == "urn:certautopilot:adcs:unexpected-page"
    assert "Please sign in to continue." in body["error"]["detail"]
    assert len(body["error"]["detail"]) < 500


def test_own_csr_on_an_adcs_issuer(service: Service, double: AdcsDouble) -> None:
    slug = new_project(service)
    issuer_id = add_issuer(service, slug, double, "basic")
    key = keys.generate_key("rsa-2048")
    csr = keys.build_csr(key, ["byo.corp.test", "www.byo.corp.test"]).decode()
    created = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer_id, "csr_pem": csr},
    )
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "issued", body["error"]
    assert body["sans"] == ["byo.corp.test", "www.byo.corp.test"]
    leaf = service.call("GET", f"/projects/{slug}/certificates/{created['id']}/cert.pem").text
    assert keys.cert_info(leaf).names == ("byo.corp.test", "www.byo.corp.test")
    no_key = service.call("GET", f"/projects/{slug}/certificates/{created['id']}/key.pem")
    assert no_key.status_code == 404
