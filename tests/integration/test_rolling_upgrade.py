"""A rolling upgrade: a certificate request waiting for its approval survives a new release
of the code that changes the approval workflow.

The "new release" is a copy of ``src/certautopilot`` with one change written the way the
README asks workflow changes to be written: a new step behind ``DBOS.patch``. The old worker
is stopped while the workflow waits on a person; a worker of the new release (the copy first
on ``PYTHONPATH``) takes it over under the same application version, and the approval
completes it. DBOS's patch says where each run stands: the workflow started on the old code
replays its history without the new step; a request made after the upgrade runs it.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import certautopilot
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, _make_service, backends, create_project, fresh_database
from tests.integration._workflows import parked_approvals, version_id

pytestmark = pytest.mark.lab

OLD = '''def approve_then_issue(version_id: str, kind: str = "acme") -> str:
    """Waits for the approval request's decision (or its expiry), then issues."""
'''
NEW = (
    OLD
    + """    if DBOS.patch("record-upgrade"):  # the new release's step
        _record_upgrade(version_id)
"""
)
NEW_STEP = """

@DBOS.step(name="upgrade.record")
def _record_upgrade(version_id: str) -> None:
    import os

    with open(os.environ["UPGRADE_MARKER"], "a") as marker:
        marker.write(version_id + "\\n")
"""


@pytest.fixture(params=backends())
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    """A service of its own, and the source of its next release."""
    release = tmp_path / "release-2"
    shutil.copytree(Path(certautopilot.__file__).parent, release / "certautopilot")
    workflow = release / "certautopilot" / "workflows" / "issuance.py"
    source = workflow.read_text()
    assert OLD in source
    workflow.write_text(source.replace(OLD, NEW) + NEW_STEP)
    with fresh_database(request.param, tmp_path, prefix="cap_upgrade") as url:
        made = _make_service(url, tmp_path / "data")
        try:
            yield next(made), release
        finally:
            made.close()


def _request(service: Service, p: str, issuer: str, token: str, name: str) -> dict[str, str]:
    body = service.ok(
        "POST",
        f"/projects/{p}/certificates",
        202,
        token=token,
        json={"issuer": issuer, "common_name": name},
    )
    assert body["status"] == "awaiting_approval"
    return {"id": body["id"], "request": body["approval_request"]["id"]}


def test_a_request_waiting_for_approval_survives_an_upgrade(
    upgraded: tuple[Service, Path], lab: LabInfo, tmp_path: Path
) -> None:
    service, release = upgraded
    project = create_project(service, lab, manual_zone=False)
    p = project.slug
    service.ok("PUT", f"/projects/{p}/policy", json={"approval_required": True})
    email = f"op-{uuid.uuid4().hex[:6]}@example.test"
    service.ok("POST", f"/projects/{p}/members", 201, json={"email": email, "role": "operator"})
    operator = service.token_for(email)

    before = _request(service, p, project.issuer_id, operator, "before.example.test")
    deadline = time.monotonic() + 60
    while not parked_approvals(service):  # the old release's worker has it parked on the approval
        assert time.monotonic() < deadline, "the approval workflow never started waiting"
        time.sleep(0.2)
    service.stop_worker()

    marker = tmp_path / "upgraded.txt"
    marker.touch()
    service.start_worker({"PYTHONPATH": str(release), "UPGRADE_MARKER": str(marker)})
    service.ok("POST", f"/projects/{p}/requests/{before['request']}/approve", json={})
    assert service.wait_for(p, before["id"], ("issued", "failed"))["status"] == "issued"
    assert marker.read_text() == ""  # it replayed its history: no step of the new release

    after = _request(service, p, project.issuer_id, operator, "after.example.test")
    service.ok("POST", f"/projects/{p}/requests/{after['request']}/approve", json={})
    assert service.wait_for(p, after["id"], ("issued", "failed"))["status"] == "issued"
    assert marker.read_text().split() == [version_id(service, after["id"])]  # the new code ran
