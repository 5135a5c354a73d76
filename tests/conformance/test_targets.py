"""The distribution ``Target`` contract, run against the in-memory twin and every real
target against its real local server (see conftest.py for the servers and read-backs).

What is checked is what distribution/interfaces.py promises: a deployment puts the
material at the destination and replaces what was there; deploying the same version
again is harmless and leaves one copy; a dry run changes nothing and says what it
would do; an unreachable server is a retryable ``DistributionError`` from ``deploy`` and
a failed check from ``dry_run``; material without the key the target needs fails before
anything is written; results are JSON; no key or credential is in a result, an error or
a ``repr``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from certautopilot.distribution.interfaces import (
    DeployResult,
    DistributionError,
    DryRunReport,
    Material,
    Target,
)
from tests.conformance.conftest import Issuer, TargetBackend, unique


def _no_secret(backend: TargetBackend, material: Material | None, *texts: object) -> None:
    secrets = list(backend.secrets)
    if material is not None and material.key_pem:
        secrets.append(material.key_pem)
        secrets.append(material.key_pem.strip().splitlines()[1])  # a line of the key body
    for text in texts:
        shown = str(text)
        for secret in secrets:
            assert secret not in shown, f"{backend.kind}: a secret shows in {shown[:200]!r}"


def _results_text(result: DeployResult | DryRunReport) -> str:
    if isinstance(result, DryRunReport):
        return json.dumps(result.as_dict())
    return json.dumps(
        {
            "actions": list(result.actions),
            "state": dict(result.state),
            "detail": dict(result.detail),
        }
    )


def test_is_a_target(target_backend: TargetBackend) -> None:
    target = target_backend.make(unique("proto"))
    assert isinstance(target, Target)
    assert target.kind == target_backend.kind


def test_deploy_puts_the_material_at_the_destination(
    target_backend: TargetBackend, issuer: Issuer
) -> None:
    tag = unique("deploy")
    target, material = target_backend.make(tag), issuer.material()
    result = asyncio.run(target.deploy(material, {}))
    assert isinstance(result, DeployResult)
    assert result.actions, "a deployment says what it did"
    assert target_backend.read(tag) == [material.fingerprint_sha256]
    _no_secret(target_backend, material, _results_text(result), repr(result), repr(target))


def test_a_renewal_replaces_the_deployed_certificate(
    target_backend: TargetBackend, issuer: Issuer
) -> None:
    tag = unique("renew")
    target = target_backend.make(tag)
    first, second = issuer.material(1), issuer.material(2)
    state = asyncio.run(target.deploy(first, {})).state
    result = asyncio.run(target.deploy(second, state))
    assert target_backend.read(tag) == [second.fingerprint_sha256]
    json.dumps(dict(result.state))  # kept in the database for the next deployment


def test_deploying_the_same_version_again_is_harmless(
    target_backend: TargetBackend, issuer: Issuer
) -> None:
    """A retried attempt (after a crash or a timeout) must not fail or duplicate."""
    tag = unique("again")
    target, material = target_backend.make(tag), issuer.material()
    state = asyncio.run(target.deploy(material, {})).state
    asyncio.run(target.deploy(material, state))
    assert target_backend.read(tag) == [material.fingerprint_sha256]
    # A fresh target object (a new worker) with the stored state does the same.
    asyncio.run(target_backend.make(tag).deploy(material, state))
    assert target_backend.read(tag) == [material.fingerprint_sha256]


def test_a_dry_run_changes_nothing(target_backend: TargetBackend, issuer: Issuer) -> None:
    tag = unique("dry")
    target = target_backend.make(tag)
    before = target_backend.read(tag)
    fresh = asyncio.run(target.dry_run(issuer.material(), {}))
    assert isinstance(fresh, DryRunReport)
    assert fresh.ok, fresh.as_dict()
    assert fresh.would, "a dry run says what a deployment would do"
    assert target_backend.read(tag) == before

    deployed = issuer.material(1)
    state = asyncio.run(target.deploy(deployed, {})).state
    report = asyncio.run(target.dry_run(issuer.material(2), state))
    assert report.ok, report.as_dict()
    assert target_backend.read(tag) == [deployed.fingerprint_sha256]
    _no_secret(target_backend, deployed, _results_text(fresh), _results_text(report))


def test_an_unreachable_server_is_a_retryable_distribution_error(
    target_backend: TargetBackend, issuer: Issuer
) -> None:
    target, material = target_backend.broken(), issuer.material()
    with pytest.raises(DistributionError) as caught:
        asyncio.run(target.deploy(material, {}))
    _no_secret(target_backend, material, caught.value, repr(caught.value), caught.value.detail)
    report = asyncio.run(target.dry_run(material, {}))
    assert not report.ok, "a dry run reports an unreachable server as a failed check"
    _no_secret(target_backend, material, _results_text(report))


def test_a_down_server_is_retryable(target_backend: TargetBackend, issuer: Issuer) -> None:
    """Unreachable is transient: the core retries it (local: a missing directory is not)."""
    if target_backend.kind == "local":
        pytest.skip("local has no server: a missing directory stays missing")
    with pytest.raises(DistributionError) as caught:
        asyncio.run(target_backend.broken().deploy(issuer.material(), {}))
    assert caught.value.retryable, str(caught.value)


def test_material_without_the_key_fails_before_anything_is_written(
    target_backend: TargetBackend, issuer: Issuer
) -> None:
    """Every configuration here deploys the key, so key-less material is refused."""
    if target_backend.kind == "webhook":
        pytest.skip("webhook sends no key unless include_private_key; nothing to refuse")
    tag = unique("nokey")
    target = target_backend.make(tag)
    deployed = issuer.material(1)
    state = asyncio.run(target.deploy(deployed, {})).state
    keyless = issuer.material(2, with_key=False)
    with pytest.raises(DistributionError, match="private key"):
        asyncio.run(target.deploy(keyless, state))
    assert target_backend.read(tag) == [deployed.fingerprint_sha256]


def test_refused_credentials_are_not_retryable(
    target_backend: TargetBackend, issuer: Issuer
) -> None:
    """Trying the same wrong credential again cannot help: the deployment fails at once."""
    if target_backend.refused is None:
        pytest.skip(f"{target_backend.kind}: its local server checks no credential")
    target, material = target_backend.refused(), issuer.material()
    with pytest.raises(DistributionError) as caught:
        asyncio.run(target.deploy(material, {}))
    assert not caught.value.retryable, str(caught.value)
    _no_secret(target_backend, material, caught.value)
    report = asyncio.run(target.dry_run(material, {}))
    assert not report.ok, "a dry run reports refused credentials as a failed check"
