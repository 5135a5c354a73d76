"""Real certbot against the lab: a venv with certbot and certbot-dns-rfc2136 (made once),
and its account registration and ``certonly`` with the lab's BIND (RFC 2136, TSIG) and
Pebble. Shared by the benchmark (bench/issue_batch.py) and the certbot takeover test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from certautopilot_lab.info import LabInfo

#: Where the benchmark and the tests keep the venv (gitignored).
DEFAULT_VENV = Path(__file__).resolve().parents[3] / "bench" / ".certbot-venv"


def ensure_certbot_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The ``certbot`` executable of ``venv``, installing certbot there when missing."""
    python = venv / "bin" / "python"
    certbot = venv / "bin" / "certbot"
    probe = [str(python), "-c", "import certbot, certbot_dns_rfc2136"]
    if certbot.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return certbot
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "certbot",
            "certbot-dns-rfc2136",
        ],
        check=True,
    )
    return certbot


class Certbot:
    """certbot with its config, work and logs dirs under ``work``, on the lab's CA."""

    def __init__(self, lab: LabInfo, work: Path, email: str, certbot: Path | None = None) -> None:
        self.certbot = certbot or ensure_certbot_venv()
        self.lab = lab
        self.work = work
        self.config_dir = work / "config"
        work.mkdir(parents=True, exist_ok=True)
        self.credentials = work / "rfc2136.ini"
        self.credentials.touch(mode=0o600)
        self.credentials.chmod(0o600)
        self.credentials.write_text(
            "dns_rfc2136_server = 127.0.0.1\n"
            f"dns_rfc2136_port = {lab.dns_port}\n"
            f"dns_rfc2136_name = {lab.tsig_name}\n"
            f"dns_rfc2136_secret = {lab.tsig_secret}\n"
            "dns_rfc2136_algorithm = HMAC-SHA256\n"
        )
        dirs = [
            "--config-dir",
            str(self.config_dir),
            "--work-dir",
            str(work / "work"),
            "--logs-dir",
            str(work / "logs"),
        ]
        self.common = [
            "--non-interactive",
            "--agree-tos",
            "-m",
            email,
            "--server",
            lab.directory_url,
            *dirs,
        ]
        self.env = {**os.environ, "REQUESTS_CA_BUNDLE": str(lab.ca_bundle_path)}

    def version(self) -> str:
        return subprocess.run(
            [str(self.certbot), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()

    def register(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.certbot), "register", *self.common],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def certonly(self, *names: str, key: str = "ecdsa") -> subprocess.CompletedProcess[str]:
        """One certificate for ``names`` by DNS-01 (``key``: ecdsa P-256 or rsa 2048)."""
        key_args = (
            ["--key-type", "ecdsa", "--elliptic-curve", "secp256r1"]
            if key == "ecdsa"
            else ["--key-type", "rsa", "--rsa-key-size", "2048"]
        )
        domains = [arg for name in names for arg in ("-d", name)]
        command = [
            str(self.certbot),
            "certonly",
            *self.common,
            "--dns-rfc2136",
            "--dns-rfc2136-credentials",
            str(self.credentials),
            "--dns-rfc2136-propagation-seconds",
            "0",
            *domains,
            *key_args,
        ]
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
