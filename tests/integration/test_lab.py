"""The local ACME lab: BIND serves TSIG-updated TXT records, Pebble answers, stop is careful."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest
from cryptography import x509
from typer.testing import CliRunner

from certautopilot.errors import ConfigError, NotFound
from certautopilot_lab import (
    LabInfo,
    axfr_txt,
    free_port,
    lab_status,
    pebble_cert_status,
    pebble_roots,
    procs,
    start_lab,
    start_lab_on_free_ports,
    stop_lab,
)
from certautopilot_lab.cli import lab_app
from certautopilot_lab.probes import https_get
from certautopilot_lab.procs import cmdline

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        shutil.which("pebble") is None or shutil.which("named", path="/usr/sbin:/usr/bin") is None,
        reason="needs Debian packages pebble and bind9",
    ),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    base_dir = tmp_path_factory.mktemp("lab")
    info = start_lab_on_free_ports(base_dir)
    yield info
    stop_lab(base_dir)


def keyring(info: LabInfo) -> dict[dns.name.Name, dns.tsig.Key]:
    name = dns.name.from_text(info.tsig_name)
    return {name: dns.tsig.Key(name, info.tsig_secret, info.tsig_algorithm)}


def update(info: LabInfo, zone: str, *, signed: bool = True) -> dns.update.UpdateMessage:
    if not signed:
        return dns.update.UpdateMessage(zone)
    return dns.update.UpdateMessage(
        zone, keyring=keyring(info), keyname=info.tsig_name, keyalgorithm=info.tsig_algorithm
    )


def send(info: LabInfo, message: dns.message.Message) -> int:
    return dns.query.tcp(message, info.dns_host, port=info.dns_port, timeout=3).rcode()


def served_txt(info: LabInfo, name: str) -> list[str]:
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    response = dns.query.udp(query, info.dns_host, port=info.dns_port, timeout=3)
    return [b"".join(r.strings).decode() for rrset in response.answer for r in rrset]


def test_directory_answers_over_the_lab_ca(lab: LabInfo) -> None:
    directory = json.loads(https_get(lab.directory_url, lab.ca_bundle_path))
    assert {"newAccount", "newNonce", "newOrder", "revokeCert"} <= set(directory)
    assert lab.directory_url == f"https://127.0.0.1:{lab.acme_port}/dir"


def test_signed_update_is_served_and_transferred(lab: LabInfo) -> None:
    name = "_acme-challenge.signed.example.test."
    msg = update(lab, "example.test")
    msg.add(name, 60, "TXT", '"value-1"')
    assert send(lab, msg) == dns.rcode.NOERROR
    assert served_txt(lab, name) == ["value-1"]
    assert ("_acme-challenge.signed.example.test", "value-1") in axfr_txt(lab, "example.test")

    msg = update(lab, "example.test")
    msg.delete(name, "TXT", '"value-1"')
    assert send(lab, msg) == dns.rcode.NOERROR
    assert served_txt(lab, name) == []
    assert not [r for r in axfr_txt(lab, "example.test") if "_acme-challenge" in r[0]]


def test_unsigned_update_is_refused(lab: LabInfo) -> None:
    msg = update(lab, "manual.test", signed=False)
    msg.add("_acme-challenge.manual.test.", 60, "TXT", '"nope"')
    assert send(lab, msg) == dns.rcode.REFUSED
    assert served_txt(lab, "_acme-challenge.manual.test.") == []


def test_signed_update_of_other_types_is_refused(lab: LabInfo) -> None:
    msg = update(lab, "example.test")
    msg.add("evil.example.test.", 60, "A", "192.0.2.1")
    assert send(lab, msg) == dns.rcode.REFUSED


def test_unsigned_axfr_is_refused(lab: LabInfo) -> None:
    query = dns.message.make_query("example.test", dns.rdatatype.AXFR)
    response = dns.query.tcp(query, lab.dns_host, port=lab.dns_port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED


def test_subzone_is_its_own_zone(lab: LabInfo) -> None:
    name = "_acme-challenge.www.sub.example.test."
    msg = update(lab, "sub.example.test")
    msg.add(name, 60, "TXT", '"in-sub"')
    assert send(lab, msg) == dns.rcode.NOERROR
    assert ("_acme-challenge.www.sub.example.test", "in-sub") in axfr_txt(lab, "sub.example.test")
    assert all("sub" not in owner for owner, _ in axfr_txt(lab, "example.test"))
    # The parent's delegation is consistent: it refers to the child zone's nameserver.
    query = dns.message.make_query("sub.example.test", dns.rdatatype.NS)
    response = dns.query.udp(query, lab.dns_host, port=lab.dns_port, timeout=3)
    assert [str(r.target) for rrset in response.answer for r in rrset] == ["ns1.sub.example.test."]
    msg = update(lab, "sub.example.test")
    msg.delete(name, "TXT")
    assert send(lab, msg) == dns.rcode.NOERROR
    # Sent to the parent zone, a name below the delegation is refused (not silently hidden).
    msg = update(lab, "example.test")
    msg.add(name, 60, "TXT", '"wrong-zone"')
    assert send(lab, msg) == dns.rcode.REFUSED


def test_pebble_management_api(lab: LabInfo) -> None:
    root_pem, intermediate_pem = pebble_roots(lab)
    root = x509.load_pem_x509_certificate(root_pem.encode())
    intermediate = x509.load_pem_x509_certificate(intermediate_pem.encode())
    assert intermediate.issuer == root.subject
    with pytest.raises(NotFound):
        pebble_cert_status(lab, "00DEADBEEF")


def test_second_start_reuses_the_running_lab(lab: LabInfo) -> None:
    again = start_lab(lab.base_dir, dns_port=free_port(), acme_port=free_port(), mgmt_port=1)
    assert again == lab
    assert lab_status(lab.base_dir) == lab
    assert LabInfo.from_json(lab.to_json()) == lab
    assert (lab.base_dir / "lab.json").stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="nonce_reject_percent"):
        start_lab(lab.base_dir, nonce_reject_percent=50)


def test_env_describes_the_lab(lab: LabInfo) -> None:
    env = lab.env()
    assert env["CERTAUTOPILOT_LAB_DIRECTORY_URL"] == lab.directory_url
    assert env["CERTAUTOPILOT_LAB_DNS_PORT"] == str(lab.dns_port)
    assert env["CERTAUTOPILOT_LAB_TSIG_SECRET"] == lab.tsig_secret
    assert env["CERTAUTOPILOT_LAB_ZONES"] == "example.test,sub.example.test,manual.test"


def test_taken_port_is_a_clear_error(lab: LabInfo, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"port 127.0.0.1:{lab.dns_port} is already in use"):
        start_lab(tmp_path, dns_port=lab.dns_port, acme_port=free_port(), mgmt_port=free_port())
    assert lab_status(tmp_path) is None


def test_stop_touches_only_its_own_processes(lab: LabInfo, tmp_path: Path) -> None:
    other = start_lab_on_free_ports(tmp_path / "other", cert_validity_seconds=3600)
    first_secret, first_ca = other.tsig_secret, other.ca_bundle_path.read_bytes()
    stop_lab(other.base_dir)
    assert lab_status(other.base_dir) is None
    assert not (other.base_dir / "lab.json").exists()
    assert cmdline(other.named_pid) == [] and cmdline(other.pebble_pid) == []
    assert lab_status(lab.base_dir) == lab  # the module's lab still runs

    # Restart in the same directory: new processes, same TSIG key and CA bundle.
    again = start_lab_on_free_ports(tmp_path / "other")
    assert again.named_pid != other.named_pid
    assert again.tsig_secret == first_secret
    assert again.ca_bundle_path.read_bytes() == first_ca

    # A lab.json pointing at somebody else's process: stop must leave it alone.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stop_lab(again.base_dir)
        forged = json.loads(again.to_json()) | {"named_pid": bystander.pid}
        (again.base_dir / "lab.json").write_text(json.dumps(forged))
        stop_lab(again.base_dir)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_missing_binary_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "_SEARCH_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="apt-get install -y bind9"):
        start_lab(
            tmp_path / "lab", dns_port=free_port(), acme_port=free_port(), mgmt_port=free_port()
        )


def test_cli_env_and_status(lab: LabInfo, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(lab_app, ["env", "--dir", str(lab.base_dir)])
    assert result.exit_code == 0, result.output
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in result.output.splitlines()
    )
    assert exported == lab.env()
    result = runner.invoke(lab_app, ["status", "--dir", str(lab.base_dir)])
    assert result.exit_code == 0 and lab.directory_url in result.output
    assert lab.tsig_secret not in result.output
    result = runner.invoke(lab_app, ["status", "--dir", str(tmp_path)])
    assert result.exit_code == 1
