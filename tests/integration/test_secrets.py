"""Secrets stay secret: not in the database in clear (ours or DBOS's tables), logs or responses.

Also: EAB at issuer creation, and KEK rotation with no data loss.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot_lab.a2c import A2CSettings
from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import LabInfo
from tests.conftest import ACME_CAS, Project, Service, running_a2c


def _everything_in_database(service: Service) -> str:
    """Every row of every table, ours and DBOS's, as text (BLOBs as hex and latin-1)."""
    engine = make_engine(service.settings)
    chunks: list[str] = []
    try:
        inspector = sa.inspect(engine)
        schemas = [None] if service.settings.is_sqlite else ["public", "dbos"]
        with engine.connect() as conn:
            for schema in schemas:
                for table in inspector.get_table_names(schema=schema):
                    t = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)
                    for row in conn.execute(sa.select(t)):
                        for value in row:
                            if isinstance(value, bytes | memoryview):
                                raw = bytes(value)
                                chunks.append(raw.hex())
                                chunks.append(raw.decode("latin-1"))
                            else:
                                chunks.append(str(value))
    finally:
        engine.dispose()
    return "\n".join(chunks)


def _logs(service: Service) -> str:
    return "\n".join(p.read_text(errors="replace") for p in service.log_dir.glob("*.log"))


def test_no_secret_in_database_logs_or_responses(
    service: Service, project: Project, lab: LabInfo
) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "secret.example.test"},
    )
    service.wait_for(p, created["id"], ("issued",))
    key_pem = service.call("GET", f"/projects/{p}/certificates/{created['id']}/key.pem").text
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_body = "".join(key_pem.strip().splitlines()[1:-1])

    needles = {
        "private key (PEM body)": key_body[:48],
        "private key (DER hex)": der.hex()[:64],
        "TSIG secret": lab.tsig_secret,
        "PEM private key header": "PRIVATE KEY-----",
    }
    haystacks = {"database": _everything_in_database(service), "logs": _logs(service)}
    responses = [
        service.call("GET", f"/projects/{p}/issuers").text,
        service.call("GET", f"/projects/{p}/zones").text,
        service.call("GET", f"/projects/{p}/certificates/{created['id']}").text,
        service.call("GET", f"/projects/{p}/certificates/{created['id']}/timeline").text,
        service.call("GET", "/openapi.json").text,
    ]
    haystacks["responses"] = "\n".join(responses)
    for where, text in haystacks.items():
        for what, needle in needles.items():
            assert needle not in text, f"{what} found in {where}"
    # The database does hold the secrets, encrypted: a stored secret per kind.
    assert "workflow_status" in _table_names(service)
    engine = make_engine(service.settings)
    with make_sessionmaker(engine)() as session:
        purposes = set(session.scalars(sa.select(StoredSecret.purpose)))
    engine.dispose()
    # A zone's secret settings (the TSIG secret) are one encrypted JSON document.
    assert {"private_key", "certificate_chain", "acme_account_key", "dns_settings"} <= purposes


def _table_names(service: Service) -> set[str]:
    engine = make_engine(service.settings)
    try:
        inspector = sa.inspect(engine)
        schema = None if service.settings.is_sqlite else "dbos"
        return set(inspector.get_table_names(schema=schema))
    finally:
        engine.dispose()


def test_kek_rotation_rewraps_without_loss(service: Service, project: Project) -> None:
    p = project.slug
    created = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "rotate.example.test"},
    )
    service.wait_for(p, created["id"], ("issued",))
    before_key = service.call("GET", f"/projects/{p}/certificates/{created['id']}/key.pem").text
    before_chain = service.call(
        "GET", f"/projects/{p}/certificates/{created['id']}/fullchain.pem"
    ).text

    engine = make_engine(service.settings)
    with make_sessionmaker(engine)() as session:
        old_ids = set(session.scalars(sa.select(StoredSecret.kek_id)))
        ciphertexts = {
            r.id: r.ciphertext
            for r in session.execute(sa.select(StoredSecret.id, StoredSecret.ciphertext))
        }
    kek_file = Path(service.env["CERTAUTOPILOT_DATA_DIR"]) / "kek.key"
    assert oct(kek_file.stat().st_mode & 0o777) == "0o600"
    result = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "kek", "rotate"],
        env=service.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "rewrapped" in result.stdout
    with make_sessionmaker(engine)() as session:
        new_ids = set(session.scalars(sa.select(StoredSecret.kek_id)))
        after_ct = {
            r.id: r.ciphertext
            for r in session.execute(sa.select(StoredSecret.id, StoredSecret.ciphertext))
        }
    engine.dispose()
    assert len(new_ids) == 1 and not (new_ids & old_ids)
    assert after_ct == ciphertexts  # only DEKs were rewrapped

    # A fresh process with the rotated key file still decrypts everything ...
    service.stop_worker()
    service.start_worker()
    subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "kek", "prune"],
        env=service.env,
        check=True,
        capture_output=True,
    )
    assert len(kek_file.read_text().split()) == 1
    # ... and so does the API (its KEK object reads the file at start; restart it).
    fresh = _fresh_client(service)
    headers = {"Authorization": f"Bearer {service.admin_token}"}
    base = f"/api/v1/projects/{p}/certificates/{created['id']}"
    assert fresh.get(base + "/key.pem", headers=headers).text == before_key
    assert fresh.get(base + "/fullchain.pem", headers=headers).text == before_chain
    # New issuance after rotation works too.
    again = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "rotate2.example.test"},
    )
    assert service.wait_for(p, again["id"], ("issued", "failed"))["status"] == "issued"


def _fresh_client(service: Service):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from certautopilot.app import create_app

    client = TestClient(create_app(service.settings))
    client.__enter__()
    service.client = client
    return client


@dataclass(frozen=True)
class EabCA:
    """A CA that requires External Account Binding, with the one key it knows."""

    name: str
    directory_url: str
    ca_bundle_pem: str
    hmac: str


@pytest.fixture(scope="module", params=ACME_CAS)
def eab_ca(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, lab: LabInfo
) -> Iterator[EabCA]:
    hmac = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    base = tmp_path_factory.mktemp("eab")
    if request.param == "pebble":
        info = start_lab_on_free_ports(base, eab_keys={"kid-1": hmac}, eab_required=True)
        try:
            yield EabCA("pebble", info.directory_url, info.ca_bundle_path.read_text(), hmac)
        finally:
            stop_lab(base)
        return
    settings = A2CSettings(eab_required=True, eab_keys=(("kid-1", hmac),))
    with running_a2c(lab, base, settings) as a2c:
        yield EabCA("acme2certifier", a2c.directory_url, a2c.ca_bundle_path.read_text(), hmac)


def _refused_fields(service: Service, slug: str, acme: dict[str, Any]) -> list[str]:
    refused = service.call(
        "POST", f"/projects/{slug}/issuers", json={"name": "refused", "kind": "acme", "acme": acme}
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    return sorted(e["field"] for e in refused.json()["errors"])


def test_eab_required_wrong_and_right(service: Service, eab_ca: EabCA) -> None:
    """Each refusal names the field the CA found wrong: the kid when it says the kid is
    unknown, the HMAC key when the binding's signature failed; a CA that does not say
    which (acme2certifier: "invalid eab credentials") gets both marked."""
    slug = f"eab-{eab_ca.name}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": "EAB"})
    acme = {
        "directory_url": eab_ca.directory_url,
        "contact_email": "ops@example.test",  # acme2certifier requires one
        "terms_agreed": True,
        "ca_bundle_pem": eab_ca.ca_bundle_pem,
    }
    both = ["acme.eab_hmac_key", "acme.eab_kid"]
    assert _refused_fields(service, slug, acme) == both  # required, none sent
    wrong_kid = {**acme, "eab_kid": "kid-unknown", "eab_hmac_key": eab_ca.hmac}
    wrong_hmac = {**acme, "eab_kid": "kid-1", "eab_hmac_key": "A" * 43}
    if eab_ca.name == "pebble":
        assert _refused_fields(service, slug, wrong_kid) == ["acme.eab_kid"]
        assert _refused_fields(service, slug, wrong_hmac) == ["acme.eab_hmac_key"]
    else:
        assert _refused_fields(service, slug, wrong_kid) == both
        assert _refused_fields(service, slug, wrong_hmac) == both
    good = service.ok(
        "POST",
        f"/projects/{slug}/issuers",
        201,
        json={
            "name": "eab",
            "kind": "acme",
            "acme": {**acme, "eab_kid": "kid-1", "eab_hmac_key": eab_ca.hmac},
        },
    )
    assert good["acme"]["account_url"].startswith("https://127.0.0.1")
    assert good["acme"]["eab_kid"] == "kid-1"
    listing = service.call("GET", f"/projects/{slug}/issuers").text
    assert eab_ca.hmac not in listing and eab_ca.hmac not in str(good)
