"""``pending_action`` and ``error`` are typed in the API: OpenAPI names their fields, and
what the workflows store reads back as those models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from certautopilot.app import create_app
from certautopilot.certificates.schemas import (
    CaApprovalAction,
    CertificateError,
    ManualDnsAction,
    TxtRecord,
    pending_action_of,
)
from certautopilot.config import Settings


def _openapi(tmp_path: Path) -> dict[str, Any]:
    settings = Settings.from_env(
        {
            "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
            "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        }
    )
    client = TestClient(create_app(settings))  # no lifespan: the schema needs no database
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_openapi_shows_the_typed_payloads(tmp_path: Path) -> None:
    schemas = _openapi(tmp_path)["components"]["schemas"]
    cert = schemas["CertificateOut"]["properties"]
    action_refs = {ref["$ref"] for ref in cert["pending_action"]["anyOf"][0]["oneOf"]}
    assert action_refs == {
        "#/components/schemas/ManualDnsAction",
        "#/components/schemas/CaApprovalAction",
    }
    assert cert["pending_action"]["anyOf"][0]["discriminator"]["propertyName"] == "kind"
    assert {"$ref": "#/components/schemas/CertificateError"} in cert["error"]["anyOf"]
    assert set(schemas["ManualDnsAction"]["required"]) == {"records", "message"}
    assert schemas["TxtRecord"]["properties"]["type"]["const"] == "TXT"
    assert set(schemas["CaApprovalAction"]["required"]) >= {"request_id", "template", "deadline"}
    assert set(schemas["CertificateError"]["properties"]) == {
        "title",
        "detail",
        "type",
        "retry_after",
    }


def test_stored_payloads_read_back() -> None:
    manual = ManualDnsAction(
        records=[TxtRecord(name="_acme-challenge.a.test", value="v")], message="m"
    )
    stored = manual.model_dump(mode="json")
    assert stored == {
        "kind": "manual_dns",
        "records": [{"name": "_acme-challenge.a.test", "type": "TXT", "value": "v"}],
        "message": "m",
    }
    assert pending_action_of(stored) == manual
    # rows written before the models (ISO deadline with +00:00, no last_* keys)
    old = {
        "kind": "ca_approval",
        "request_id": 7,
        "template": "Web",
        "deadline": "2026-01-01T00:00:00+00:00",
        "message": "wait",
    }
    action = pending_action_of(old)
    assert isinstance(action, CaApprovalAction) and action.request_id == 7
    assert pending_action_of(None) is None
    error = CertificateError.model_validate({"title": "t", "detail": "d", "type": None})
    assert error.retry_after is None
