"""Audit events to a SIEM as they happen: RFC 5424 syslog over UDP or TCP, after commit.

The forwarder is a queue and one daemon thread: a request or a workflow step only puts the
committed events on the queue (never waits on the network, never fails for it). UDP sends
one datagram per message; TCP frames them by octet counting (RFC 6587 3.4.1, ``LEN SP MSG``).
A message is ``<110>1 TIMESTAMP HOST certautopilot - TYPE [cap@32473 ...] JSON``: facility
log audit (13), severity informational; the structured data carries project, seq and hash.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, sessionmaker

from certautopilot.audit import chain
from certautopilot.audit.models import AuditEvent
from certautopilot.config import Settings
from certautopilot.crypto.interfaces import KeyEncryptionKey

log = logging.getLogger(__name__)
PRI = 13 * 8 + 6
SD_ID = "cap@32473"


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424(record: dict[str, Any], hostname: str) -> bytes:
    params = " ".join(
        f'{name}="{_sd_value(record[key] if record[key] is not None else "")}"'
        for name, key in (
            ("project", "project_id"),
            ("seq", "seq"),
            ("hash", "hash"),
            ("prevHash", "prev_hash"),
            ("actor", "actor"),
            ("subject", "subject_id"),
        )
    )
    msgid = record["type"][:32]
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    head = f"<{PRI}>1 {record['at']} {hostname[:255]} certautopilot - {msgid} [{SD_ID} {params}] "
    return head.encode() + b"\xef\xbb\xbf" + body.encode()


class SyslogForwarder:
    def __init__(self, url: str, *, hostname: str | None = None) -> None:
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rpartition(":")
        self.scheme, self.address = scheme, (host.strip("[]"), int(port))
        self.hostname = hostname or socket.gethostname() or "-"
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=10000)
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="audit-syslog", daemon=True)
        self._thread.start()

    def send(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            try:
                self._queue.put_nowait(rfc5424(record, self.hostname))
            except queue.Full:
                log.warning("audit syslog queue full: an event was not forwarded")

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _connect(self) -> socket.socket:
        if self.scheme == "udp":
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return socket.create_connection(self.address, timeout=5)

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            for _ in range(2):  # once more on a fresh connection after a TCP peer went away
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    if self.scheme == "udp":
                        self._sock.sendto(message, self.address)
                    else:
                        self._sock.sendall(str(len(message)).encode() + b" " + message)
                    break
                except OSError as exc:
                    log.warning("audit syslog to %s failed: %s", self.scheme, exc)
                    if self._sock is not None:
                        self._sock.close()
                    self._sock = None
        if self._sock is not None:
            self._sock.close()


def _after_commit(session: Session) -> None:
    pending: list[AuditEvent] = session.info.pop(chain.INFO_PENDING, [])
    forwarder = session.info.get(chain.INFO_FORWARD)
    if pending and forwarder is not None:
        from certautopilot.audit.service import as_record

        forwarder.send([as_record(e) for e in pending])


def _after_rollback(session: Session) -> None:
    session.info.pop(chain.INFO_PENDING, None)


def install(
    sessions: sessionmaker[Session], kek: KeyEncryptionKey, settings: Settings
) -> SyslogForwarder | None:
    """Sessions of ``sessions`` sign checkpoints and forward their committed events."""
    forwarder = SyslogForwarder(settings.audit_syslog) if settings.audit_syslog else None
    info: dict[str, Any] = {chain.INFO_KEK: kek, chain.INFO_EVERY: settings.audit_checkpoint_every}
    if forwarder is not None:
        info[chain.INFO_FORWARD] = forwarder
        sa_event.listen(sessions, "after_commit", _after_commit)
        sa_event.listen(sessions, "after_rollback", _after_rollback)
    sessions.configure(info=info)
    return forwarder
