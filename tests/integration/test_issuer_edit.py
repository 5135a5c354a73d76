"""An issuer edited through the API is used with its new settings by the running worker.

The worker caches each issuer's connected client (``workflows.runtime.Runtime.issuers``)
under a fingerprint of its settings and secret ids; this proves, with one worker process
that stays up, that the next issuance after an edit goes to the new CA with the new trust.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from certautopilot.db.session import make_engine, make_sessionmaker, transaction
from certautopilot.issuers.models import Issuer
from certautopilot_lab.adcs_double import AdcsDouble
from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service
from tests.integration._adcs_fixture import (
    add_issuer,
    dns_names,
    new_project,
    request_cert,
    verify_chain,
)


@pytest.fixture(scope="module")
def first() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"basic"}, ca_name="FIRST-CA") as d:
        yield d


@pytest.fixture(scope="module")
def second() -> Iterator[AdcsDouble]:
    with AdcsDouble(auth_modes={"basic"}, ca_name="SECOND-CA") as d:
        yield d


def _issue(service: Service, slug: str, issuer: str, name: str, double: AdcsDouble) -> None:
    created = request_cert(service, slug, issuer, name)
    body = service.wait_for(slug, created["id"], ("issued", "failed"), timeout=60)
    assert body["status"] == "issued", body["error"]
    fullchain = service.call("GET", f"/projects/{slug}/certificates/{created['id']}/fullchain.pem")
    leaf = verify_chain(fullchain.text, double)  # signed by this double's CA, no other
    assert dns_names(leaf) == set(body["sans"])


def test_edited_issuer_is_used_by_the_same_worker(
    service: Service, first: AdcsDouble, second: AdcsDouble
) -> None:
    slug = new_project(service)
    issuer = add_issuer(service, slug, first)
    worker = service.worker
    # The doubles live for the module (both databases' runs): count this run's requests.
    seen_first, seen_second = len(first.requests), len(second.requests)
    _issue(service, slug, issuer, "before.corp.test", first)
    assert len(first.requests) == seen_first + 1

    service.ok(
        "PATCH",
        f"/projects/{slug}/issuers/{issuer}",
        json={"adcs": {"url": second.url, "ca_bundle_pem": second.ca_bundle_pem}},
    )
    _issue(service, slug, issuer, "after.corp.test", second)
    assert service.worker is worker and worker is not None and worker.poll() is None
    assert len(first.requests) == seen_first + 1  # nothing more went to the old CA
    assert len(second.requests) == seen_second + 1


def _set_ca_bundle(service: Service, issuer_id: str, bundle: str) -> None:
    """Edits the ACME issuer's CA bundle the way an issuer edit stores it (the API offers
    no ACME edit yet, so the row is changed here, in its own transaction)."""
    engine = make_engine(service.settings)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            issuer = session.get(Issuer, issuer_id)
            assert issuer is not None
            issuer.config = {**issuer.config, "ca_bundle_pem": bundle}
    finally:
        engine.dispose()


def test_edited_acme_ca_bundle_is_used_by_the_same_worker(
    service: Service, project: Project, lab: LabInfo, first: AdcsDouble
) -> None:
    p, worker = project.slug, service.worker

    def request(name: str) -> dict[str, Any]:
        created = service.ok(
            "POST",
            f"/projects/{p}/certificates",
            202,
            json={"issuer": project.issuer_id, "common_name": name},
        )
        return service.wait_for(p, created["id"], ("issued", "failed"), timeout=90)

    assert request("edit-1.example.test")["status"] == "issued"
    _set_ca_bundle(service, project.issuer_id, first.ca_bundle_pem)  # trusts another CA
    refused = request("edit-2.example.test")
    assert refused["status"] == "failed"
    assert "TLS verification" in refused["error"]["detail"]
    _set_ca_bundle(service, project.issuer_id, lab.ca_bundle_path.read_text())
    assert request("edit-3.example.test")["status"] == "issued"
    assert service.worker is worker and worker is not None and worker.poll() is None
