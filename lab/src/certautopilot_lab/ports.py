"""Finding loopback ports for a lab that may run beside other labs."""

from __future__ import annotations

import contextlib
import os
import random
import socket
from collections.abc import Iterable
from pathlib import Path

# Below Linux's default ephemeral range (32768-60999), so a port we pick is not also
# handed out to some client socket between our check and the server's bind.
_LOW, _HIGH = 20000, 32767


def port_free(port: int, *, host: str = "127.0.0.1", udp: bool = True) -> bool:
    """True when ``port`` can be bound on ``host`` for TCP (and UDP when ``udp``)."""
    kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # Servers set SO_REUSEADDR too: TIME_WAIT leftovers must not count as "taken".
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_port(*, host: str = "127.0.0.1", udp: bool = True, exclude: Iterable[int] = ()) -> int:
    """A port that is free right now for TCP and (by default) UDP on ``host``.

    Ports are drawn at random from 20000-32767 so that parallel test sessions rarely pick
    the same one; the caller still has to cope with losing a race for it.
    """
    taken = set(exclude)
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(_LOW, _HIGH)
        if port not in taken and port_free(port, host=host, udp=udp):
            return port
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        port = int(sock.getsockname()[1])
    return port


def free_ports(count: int, *, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports, each free for TCP and UDP."""
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(host=host, exclude=ports))
    return ports


def shared_with_others(port: int, pid: int, *, host: str = "127.0.0.1") -> bool:
    """True when a socket on ``host:port`` (UDP, or TCP listening) is not held by ``pid``.

    BIND binds with SO_REUSEPORT, so a second named started as the same user on a port
    that is already served binds "successfully" and the kernel splits queries between the
    two. Reading ``/proc/net`` is the only way to notice. False when it cannot be told.
    """
    wanted = _proc_net_address(host, port)
    inodes = _inodes("/proc/net/udp", wanted, None) | _inodes("/proc/net/tcp", wanted, "0A")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    mine: set[str] = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                mine.add(link[8:-1])
    return bool(inodes - mine)


def _proc_net_address(host: str, port: int) -> str:
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def _inodes(table: str, address: str, state: str | None) -> set[str]:
    try:
        lines = Path(table).read_text().splitlines()[1:]
    except OSError:
        return set()
    found: set[str] = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] == address and (state is None or fields[3] == state):
            found.add(fields[9])
    return found
