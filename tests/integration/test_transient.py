"""A CA that rejects many nonces (Pebble's badNonce fault): issuance still completes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certautopilot_lab.core import start_lab_on_free_ports, stop_lab
from certautopilot_lab.info import LabInfo
from tests.conftest import Service, create_project


@pytest.fixture(scope="module")
def flaky_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabInfo]:
    base = tmp_path_factory.mktemp("flakylab")
    info = start_lab_on_free_ports(base, nonce_reject_percent=50)
    try:
        yield info
    finally:
        stop_lab(base)


def test_bad_nonces_are_retried(service: Service, flaky_lab: LabInfo) -> None:
    project = create_project(service, flaky_lab, manual_zone=False)
    ids = [
        service.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={
                "issuer": project.issuer_id,
                "common_name": f"flaky{i}.example.test",
                "sans": [f"www.flaky{i}.example.test"],
            },
        )["id"]
        for i in range(3)
    ]
    for cert_id in ids:
        body = service.wait_for(project.slug, cert_id, ("issued", "failed"))
        assert body["status"] == "issued", body["error"]


def test_unreachable_ca_fails_in_bounded_time_with_a_clear_error(
    service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("gonelab")
    gone = start_lab_on_free_ports(base)
    try:
        project = create_project(service, gone, manual_zone=False)
    finally:
        stop_lab(base)
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={"issuer": project.issuer_id, "common_name": "gone.example.test"},
    )
    body = service.wait_for(project.slug, created["id"], ("issued", "failed"), timeout=90)
    assert body["status"] == "failed"
    assert body["error"]["title"] == "Certificate authority temporarily unavailable"
    assert body["error"]["detail"]
    types = [e["type"] for e in service.timeline(project.slug, created["id"])["events"]]
    assert types[-1] == "cert.failed"
