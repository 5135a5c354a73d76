"""A SoftHSM2 token store for the tests: a temp directory, its config, initialised tokens.

SoftHSM2 reads ``SOFTHSM2_CONF`` and scans its token directory when the module is
initialised, which happens once per process (the pkcs11 KEK keeps the module loaded), and
tokens initialised later are not seen. So :func:`softhsm` makes one store per test process
with every token the tests use, and sets ``SOFTHSM2_CONF`` before anything loads the module;
a service's worker process gets the same variable through its environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
USER_PIN = "user-pin-conformance-4711"
SO_PIN = "so-pin-conformance-0815"
# The main token (conformance, service); the spare one is logged in to by one test only,
# which tries a wrong PIN first (a process logs in to a token once: see the plugin).
MAIN_TOKEN = "cap-main"
SPARE_TOKEN = "cap-spare"


@dataclass(frozen=True)
class SoftHSM:
    base: Path
    conf: Path
    module: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def config(self, key_label: str, **extra: Any) -> dict[str, Any]:
        """A ``CERTAUTOPILOT_KEK_CONFIG`` for ``key_label`` on the main token."""
        return {
            "module_path": self.module,
            "token_label": MAIN_TOKEN,
            "user_pin": USER_PIN,
            "key_label": key_label,
            **extra,
        }


_made: SoftHSM | str | None = None
_lock = threading.Lock()


def softhsm() -> SoftHSM | str:
    """This process's store, or why SoftHSM2 cannot run here (a reason to skip)."""
    global _made
    with _lock:
        if _made is None:
            _made = _make()
        return _made


def _make() -> SoftHSM | str:
    util = shutil.which("softhsm2-util")
    module = next((m for m in MODULE_CANDIDATES if Path(m).is_file()), None)
    if util is None or module is None:
        return "SoftHSM2 is not installed (Debian package softhsm2)"
    base = Path(tempfile.mkdtemp(prefix="cap-softhsm-"))
    atexit.register(shutil.rmtree, base, True)
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in (MAIN_TOKEN, SPARE_TOKEN):
        done = subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
                "--pin",
                USER_PIN,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            return f"softhsm2-util --init-token failed: {done.stderr.strip()[:300]}"
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return SoftHSM(base, conf, module)
