"""``make demo`` when its port is taken: it says so and stops, instead of waiting for and
talking to whatever answers there."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import Service


def test_demo_refuses_a_port_something_already_answers_on(service: Service) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "certautopilot.cli", "demo", "--port", str(port)],
            env=service.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Something already answers on 127.0.0.1:{port}" in result.stderr
    assert f"make demo PORT={port + 1}" in result.stderr
    assert "Starting" not in result.stdout  # neither the lab nor the service was started
