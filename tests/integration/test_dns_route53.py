"""AWS Route 53 through dns-lexicon's route53 provider, against moto's server, via the API.

moto answers the Route 53 HTTP API (boto3 honours ``AWS_ENDPOINT_URL``, which the API
process and the worker get in their environment here) but serves no DNS. So a zone is
added (checked by listing its records), its Test publishes, finds through the API listing
and removes the probe record, and its "read on every authoritative server" step fails and
says so; a certificate order publishes its record and then stops before validation with
the propagation message, its record removed again. docs/dns-providers.md says the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from certautopilot_lab.info import LabInfo
from certautopilot_lab.ports import free_port
from tests.conftest import Service, add_pebble_issuer
from tests.integration.dns_servers import MotoRoute53

pytest.importorskip("moto")


@pytest.fixture(scope="module")
def moto_service(service: Service) -> Iterator[tuple[Service, MotoRoute53]]:
    # moto keeps its state per process: a zone name of its own, apart from the conformance
    # suite's example.com (lexicon finds the hosted zone by name).
    server = MotoRoute53(zone="route53-lab.net").start()
    env = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():  # the API runs in this process
            patch.setenv(key, value)
        service.stop_worker()  # ... and the worker in its own, with the same environment
        service.start_worker(env)
        try:
            yield service, server
        finally:
            service.stop_worker()
            service.start_worker()
            server.stop()


def _project(service: Service, lab: LabInfo) -> tuple[str, str]:
    slug = f"p-{uuid.uuid4().hex[:10]}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": f"Project {slug}"})
    issuer = add_pebble_issuer(service, lab, slug)
    return slug, issuer["id"]


def test_route53_zone_test_and_an_order_that_stops_before_validation(
    moto_service: tuple[Service, MotoRoute53], lab: LabInfo
) -> None:
    service, moto = moto_service
    slug, issuer_id = _project(service, lab)
    silent = f"127.0.0.1:{free_port()}"  # where a real zone's name servers would answer
    zone = service.ok(
        "POST",
        f"/projects/{slug}/zones",
        201,
        json={
            "name": moto.zone,
            "provider": "route53",
            "settings": moto.settings(),
            "nameservers": [silent],
            "propagation_timeout_seconds": 2,
        },
    )
    assert zone["credentials"] == ["auth_access_key", "auth_access_secret"]
    assert moto.settings()["auth_access_secret"] not in str(zone)

    result = service.ok("POST", f"/projects/{slug}/zones/{zone['id']}/test")
    steps = {s["step"]: s for s in result["steps"]}
    assert list(steps) == ["publish", "list", f"read {silent}", "remove"]
    assert steps["publish"]["ok"] and steps["list"]["ok"] and steps["remove"]["ok"]
    # moto serves no DNS: the read step cannot pass, and the result says which server.
    assert steps[f"read {silent}"]["ok"] is False
    assert "did not serve the probe value within 2s" in steps[f"read {silent}"]["detail"]
    assert result["ok"] is False
    assert moto.txt_records() == []  # the probe is gone from Route 53

    name = f"r53-{uuid.uuid4().hex[:6]}.{moto.zone}"
    cert = service.ok(
        "POST",
        f"/projects/{slug}/certificates",
        202,
        json={"issuer": issuer_id, "common_name": name},
    )
    stopped = service.wait_for(slug, cert["id"], ("failed", "issued"), timeout=90)
    assert stopped["status"] == "failed", stopped
    detail = stopped["error"]["detail"]
    assert f"_acme-challenge.{name}" in detail and silent in detail, detail
    assert moto.txt_records() == []  # the challenge record was published, then removed
