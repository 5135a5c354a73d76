"""The lab's acme2certifier: two instances beside one lab each forward their own loopback
address's port 53 to the lab's BIND, answer their directory, and stop only themselves."""

from __future__ import annotations

import json
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from certautopilot_lab.a2c import A2CSettings, a2c_status, start_a2c, stop_a2c
from certautopilot_lab.info import LabInfo
from certautopilot_lab.probes import https_get
from certautopilot_lab.procs import cmdline


def _soa_through(host: str, zone: str) -> str:
    response = dns.query.udp(
        dns.message.make_query(zone, dns.rdatatype.SOA), host, timeout=3, port=53
    )
    return response.answer[0].to_text()


def test_two_instances_forward_their_own_addresses_and_stop_alone(
    lab: LabInfo, tmp_path: Path
) -> None:
    one = start_a2c(tmp_path / "one", lab)
    two = start_a2c(tmp_path / "two", lab, A2CSettings(eab_required=True, eab_keys=(("k", "v"),)))
    try:
        assert one.forward_host != two.forward_host
        assert one.acme_port != two.acme_port
        for info in (one, two):
            assert "example.test." in _soa_through(info.forward_host, "example.test")
        meta = json.loads(https_get(two.directory_url, two.ca_bundle_path))["meta"]
        assert meta["externalAccountRequired"] is True
        assert "renewalInfo" in json.loads(https_get(one.directory_url, one.ca_bundle_path))

        stop_a2c(tmp_path / "one")
        assert a2c_status(tmp_path / "one") is None
        for pid in (one.gunicorn_pid, *one.socat_pids):
            assert cmdline(pid) == []
        assert a2c_status(tmp_path / "two") == two
        assert "example.test." in _soa_through(two.forward_host, "example.test")
    finally:
        stop_a2c(tmp_path / "one")
        stop_a2c(tmp_path / "two")
    assert all(cmdline(pid) == [] for pid in (two.gunicorn_pid, *two.socat_pids))


def test_cli_starts_describes_and_stops_it_beside_a_running_lab(lab: LabInfo) -> None:
    from typer.testing import CliRunner

    from certautopilot_lab.cli import lab_app

    runner = CliRunner()
    args = ["--dir", str(lab.base_dir)]
    started = runner.invoke(lab_app, ["a2c", "start", *args, "--renewal-force"])
    try:
        assert started.exit_code == 0, started.output
        info = a2c_status(lab.base_dir / "a2c")
        assert info is not None and info.settings.renewal_force
        assert info.directory_url in started.output
        shown = runner.invoke(lab_app, ["a2c", "status", *args])
        assert shown.exit_code == 0 and info.forward_host in shown.output
    finally:
        assert runner.invoke(lab_app, ["a2c", "stop", *args]).exit_code == 0
    gone = runner.invoke(lab_app, ["a2c", "status", *args])
    assert gone.exit_code == 1 and "not running" in gone.output
