"""Importing certificates issued elsewhere (issue 16, items 1 and 2), through the API and
the CLI, on SQLite and PostgreSQL (the session's ``service`` runs on each backend)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certautopilot.app import create_app
from certautopilot_lab.certbot import Certbot
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project, sign_in_client
from tests.integration.live_server import serve_in_thread

NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Import Test Intermediate"))
        .issuer_name(_name("Import Test Intermediate"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW + timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    names: list[str],
    *,
    days: int = 60,
    rsa_key: bool = False,
) -> tuple[x509.Certificate, Any]:
    key: Any = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    start = NOW - timedelta(days=10) if days > 0 else NOW + timedelta(days=days - 90)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(ca[1], hashes.SHA256())
    )
    return cert, key


def pem(obj: Any) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def file(name: str, data: bytes, password: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "content_base64": base64.b64encode(data).decode()}
    if password is not None:
        body["password"] = password
    return body


def new_project(service: Service) -> str:
    slug = f"imp-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": slug})
    return slug


def problem_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [e["field"] for e in response.json()["errors"]]


def test_pem_import_merge_and_inventory(service: Service) -> None:
    slug = new_project(service)
    ca = make_ca()
    leaf, key = make_leaf(ca, ["www.imp.test", "api.imp.test"])
    body = {"files": [file("fullchain.pem", pem(leaf) + pem(ca[0])), file("key.pem", pem(key))]}
    result = service.ok("POST", f"/projects/{slug}/imports", json=body)
    assert result["merged"] == [] and result["refused"] == []
    [item] = result["imported"]
    assert item["names"] == ["www.imp.test", "api.imp.test"]
    assert item["key_type"] == "ecdsa-p256" and item["has_key"] is True
    assert item["issuer_dn"] == "CN=Import Test Intermediate"
    assert item["fingerprint_sha256"] == leaf.fingerprint(hashes.SHA256()).hex(":").upper()
    assert item["expired"] is False
    cert = service.ok("GET", f"/projects/{slug}/certificates/{item['id']}")
    assert cert["managed"] is False and cert["auto_renew"] is False
    assert cert["renewal"] is None and cert["status"] == "issued"
    # the key is stored (envelope-encrypted) and comes back on the audited download
    got = service.call("GET", f"/projects/{slug}/certificates/{item['id']}/key.pem").text
    assert serialization.load_pem_private_key(got.encode(), None).public_key() == key.public_key()
    # the same certificate again (now without its key): merged, not duplicated
    again = service.ok(
        "POST", f"/projects/{slug}/imports", json={"files": [file("cert.pem", pem(leaf))]}
    )
    assert again["imported"] == [] and [m["id"] for m in again["merged"]] == [item["id"]]
    unmanaged = service.ok("GET", f"/projects/{slug}/certificates", params={"managed": "false"})
    assert [c["id"] for c in unmanaged["items"]] == [item["id"]]
    managed = service.ok("GET", f"/projects/{slug}/certificates", params={"managed": "true"})
    assert managed["items"] == []
    # never renewed: a renewal by hand is refused, it needs adopting first
    renew = service.call("POST", f"/projects/{slug}/certificates/{item['id']}/renew")
    assert renew.status_code == 409 and "adopt" in renew.json()["detail"]
    events = [e["type"] for e in service.timeline(slug, item["id"])["events"]]
    assert events == ["cert.imported", "key.exported", "cert.import_merged"]
    # the placeholder issuer of imported certificates is not one to order from
    assert service.ok("GET", f"/projects/{slug}/issuers") == []


def test_bad_imports_are_422_naming_the_field(service: Service) -> None:
    slug = new_project(service)
    ca = make_ca()
    leaf, _ = make_leaf(ca, ["mismatch.imp.test"])
    other = ec.generate_private_key(ec.SECP256R1())
    url = f"/projects/{slug}/imports"
    wrong_key = {"files": [file("cert.pem", pem(leaf)), file("key.pem", pem(other))]}
    response = service.call("POST", url, json=wrong_key)
    assert problem_fields(response) == ["files[1].key"]
    assert "does not match the certificate mismatch.imp.test" in response.json()["detail"]
    garbage = service.call("POST", url, json={"files": [file("notes.txt", b"hello")]})
    assert problem_fields(garbage) == ["files[0]"]
    not_b64 = {"files": [{"name": "x.pem", "content_base64": "%%%"}]}
    assert problem_fields(service.call("POST", url, json=not_b64)) == ["files[0].content_base64"]
    p12 = pkcs12.serialize_key_and_certificates(
        b"x", other, None, None, serialization.BestAvailableEncryption(b"right")
    )
    wrong_pw = {"files": [file("bundle.p12", p12, "wrong")]}
    assert problem_fields(service.call("POST", url, json=wrong_pw)) == ["files[0].password"]
    # nothing of the refused imports was kept
    assert service.ok("GET", f"/projects/{slug}/certificates")["items"] == []


def test_pkcs12_and_expired(service: Service) -> None:
    slug = new_project(service)
    ca = make_ca()
    leaf, key = make_leaf(ca, ["p12.imp.test"], rsa_key=True)
    p12 = pkcs12.serialize_key_and_certificates(
        b"p12", key, leaf, [ca[0]], serialization.BestAvailableEncryption(b"s3cret")
    )
    old, old_key = make_leaf(ca, ["old.imp.test"], days=-5)
    body = {
        "files": [
            file("site.pfx", p12, "s3cret"),
            file("old.pem", pem(old) + pem(ca[0]) + pem(old_key)),
        ]
    }
    result = service.ok("POST", f"/projects/{slug}/imports", json=body)
    got = {i["common_name"]: i for i in result["imported"]}
    assert got["p12.imp.test"]["key_type"] == "rsa-2048" and got["p12.imp.test"]["has_key"]
    assert got["p12.imp.test"]["expired"] is False
    assert got["old.imp.test"]["expired"] is True
    chain = service.call(
        "GET", f"/projects/{slug}/certificates/{got['p12.imp.test']['id']}/fullchain.pem"
    ).text
    # the test CA is self-signed: a root, which a served chain leaves out
    assert chain == pem(leaf).decode()


@pytest.fixture(scope="module")
def live_url(service: Service) -> Iterator[str]:
    """The session's service over real HTTP: the CLI talks to it like to any service."""
    with serve_in_thread(create_app(service.settings)) as port:
        yield f"http://127.0.0.1:{port}"


def run_cli(live_url: str, service: Service, slug: str, *args: str) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CERTAUTOPILOT_")}
    env = {
        **base,
        "CERTAUTOPILOT_URL": live_url,
        "CERTAUTOPILOT_TOKEN": service.admin_token,
        "CERTAUTOPILOT_PROJECT": slug,
    }
    done = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "import", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_certbot_takeover_with_real_certbot(
    service: Service, lab: LabInfo, tmp_path: Path, live_url: str
) -> None:
    """Real certbot (the lab's venv) issues two certificates from Pebble by DNS-01 through
    BIND; ``certautopilot import certbot`` reads its config dir (live/ symlinks into
    archive/, renewal/*.conf) and uploads each lineage."""
    project = create_project(service, lab, manual_zone=False)
    stem = uuid.uuid4().hex[:6]
    bot = Certbot(lab, tmp_path / "certbot", "ops@example.test")
    assert bot.register().returncode == 0
    first = f"cb1-{stem}.example.test"
    second = f"cb2-{stem}.example.test"
    ran = bot.certonly(first, f"www.{first}")
    assert ran.returncode == 0, ran.stderr
    ran = bot.certonly(second, key="rsa")
    assert ran.returncode == 0, ran.stderr
    assert (bot.config_dir / "live" / first / "cert.pem").is_symlink()
    report = run_cli(live_url, service, project.slug, "certbot", str(bot.config_dir))
    got = {i["common_name"]: i for i in report["imported"]}
    assert set(got) == {first, second}
    assert got[first]["names"] == [first, f"www.{first}"]
    assert got[first]["key_type"] == "ecdsa-p256" and got[second]["key_type"] == "rsa-2048"
    assert all(i["has_key"] for i in got.values())
    # the project has a Pebble issuer on the same directory and zones for every name
    assert got[first]["adoption"]["automatic"] is True
    assert got[first]["adoption"]["issuer"] == project.issuer_id
    cert = service.ok("GET", f"/projects/{project.slug}/certificates/{got[first]['id']}")
    assert cert["import_source"] == "certbot" and cert["managed"] is False
    assert cert["imported_from"]["acme_server"] == lab.directory_url
    assert cert["imported_from"]["authenticator"] == "dns-rfc2136"
    # a project without that issuer or zone: the report says what a person must do
    other = new_project(service)
    report = run_cli(live_url, service, other, "certbot", str(bot.config_dir))
    adoption = report["imported"][0]["adoption"]
    assert adoption["automatic"] is False
    assert any(lab.directory_url in t for t in adoption["todo"])
    assert any("add a DNS zone covering" in t for t in adoption["todo"])
    # taken over twice: merged, not duplicated
    again = run_cli(live_url, service, project.slug, "certbot", str(bot.config_dir))
    assert again["imported"] == [] and len(again["merged"]) == 2
    # the config dir as a folder of PEM files (sent as a tarball; live/ links kept)
    third = new_project(service)
    as_pem = run_cli(live_url, service, third, "pem", str(bot.config_dir))
    assert {i["common_name"] for i in as_pem["imported"]} == {first, second}
    assert all(i["has_key"] for i in as_pem["imported"])


def test_acme_sh_takeover_recorded_layout(service: Service, tmp_path: Path, live_url: str) -> None:
    """acme.sh is a shell script that is not packaged in Debian nor installable here
    without fetching it from the network: this layout is built from its documented files
    (``<domain>/<domain>.conf`` with Le_Domain, Le_Alt, Le_Keylength, Le_API, Le_Webroot;
    ``<domain>.cer``, ``<domain>.key``, ``ca.cer``, ``fullchain.cer``; ``<domain>_ecc/``
    for EC keys)."""
    slug = new_project(service)
    ca = make_ca()
    home = tmp_path / ".acme.sh"
    for domain, alt, ecc in (("a.acme.test", "b.acme.test", True), ("r.acme.test", "", False)):
        leaf, key = make_leaf(ca, [domain, *([alt] if alt else [])], rsa_key=not ecc)
        folder = home / (domain + ("_ecc" if ecc else ""))
        folder.mkdir(parents=True)
        (folder / f"{domain}.cer").write_bytes(pem(leaf))
        (folder / f"{domain}.key").write_bytes(pem(key))
        (folder / "ca.cer").write_bytes(pem(ca[0]))
        (folder / "fullchain.cer").write_bytes(pem(leaf) + pem(ca[0]))
        (folder / f"{domain}.conf").write_text(
            f"Le_Domain='{domain}'\nLe_Alt='{alt or 'no'}'\n"
            f"Le_Webroot='{'dns_nsupdate' if ecc else 'no'}'\n"
            f"Le_Keylength='{'ec-256' if ecc else '2048'}'\n"
            "Le_API='https://acme-v02.api.letsencrypt.org/directory'\n"
        )
    (home / "account.conf").write_text("LOG_FILE=acme.sh.log\n")
    (home / "ca").mkdir()
    report = run_cli(live_url, service, slug, "acme.sh", str(home))
    got = {i["common_name"]: i for i in report["imported"]}
    assert set(got) == {"a.acme.test", "r.acme.test"}
    assert got["a.acme.test"]["key_type"] == "ecdsa-p256"
    assert got["r.acme.test"]["key_type"] == "rsa-2048"
    cert = service.ok("GET", f"/projects/{slug}/certificates/{got['a.acme.test']['id']}")
    assert cert["imported_from"]["authenticator"] == "dns_nsupdate"
    assert cert["imported_from"]["key_type"] == "ec-256"
    todo = got["r.acme.test"]["adoption"]["todo"]
    assert any("standalone" in t for t in todo)


def test_web_import_page(service: Service) -> None:
    """The page's form (a file input; app.js puts dropped files in it) posts multipart."""
    slug = new_project(service)
    csrf = sign_in_client(service)
    try:
        page = service.client.get(f"/p/{slug}/import")
        assert (
            page.status_code == 200 and 'type="file"' in page.text and "data-dropzone" in page.text
        )
        ca = make_ca()
        leaf, key = make_leaf(ca, ["web.imp.test"])
        posted = service.client.post(
            f"/p/{slug}/import",
            data={"csrf": csrf},
            files=[("files", ("cert.pem", pem(leaf))), ("files", ("key.pem", pem(key)))],
        )
        assert posted.status_code == 200, posted.text
        assert 'data-outcome="imported"' in posted.text and "web.imp.test" in posted.text
        listed = service.client.get(f"/p/{slug}/certificates", params={"managed": "no"}).text
        assert "web.imp.test" in listed
        managed_only = service.client.get(f"/p/{slug}/certificates", params={"managed": "yes"})
        assert "web.imp.test" not in managed_only.text
        other = ec.generate_private_key(ec.SECP256R1())
        wrong = service.client.post(
            f"/p/{slug}/import",
            data={"csrf": csrf},
            files=[("files", ("cert.pem", pem(leaf))), ("files", ("k.pem", pem(other)))],
        )
        assert wrong.status_code == 422 and "does not match" in wrong.text
    finally:
        service.client.cookies.clear()
