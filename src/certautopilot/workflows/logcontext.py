"""The worker's log context: the running DBOS workflow's id, and the certificate it works
on once a step has loaded it (``records.load``), for every log line of that workflow."""

from __future__ import annotations

import threading
from collections import OrderedDict

from dbos import DBOS

from certautopilot import logs

_KEPT = 10_000  # workflows remembered (the oldest are forgotten: bounded memory)
_certificates: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()


def remember_certificate(certificate_id: str) -> None:
    """Called by a step that loaded the certificate of the running workflow."""
    wid = DBOS.workflow_id
    if wid is None:
        return
    with _lock:
        _certificates[wid] = certificate_id
        _certificates.move_to_end(wid)
        while len(_certificates) > _KEPT:
            _certificates.popitem(last=False)


def current() -> dict[str, str]:
    wid = DBOS.workflow_id
    if wid is None:
        return {}
    with _lock:
        cert = _certificates.get(wid)
    return {"workflow_id": wid, "certificate_id": cert} if cert else {"workflow_id": wid}


def install() -> None:
    logs.add_provider(current)
