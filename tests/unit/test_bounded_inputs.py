"""Every integer or number a client can send is bounded (issue #12, item 2).

An unbounded integer reaches SQLite's driver as an OverflowError (a 500 that drops the
keep-alive connection) or a column that cannot hold it. This walks the OpenAPI schema the
service publishes — every path and query parameter and everything reachable from a request
body — so a new route or field with a bare ``int`` fails here, naming where it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from certautopilot.app import create_app
from certautopilot.config import Settings


def _openapi(tmp_path: Path) -> dict[str, Any]:
    settings = Settings.from_env(
        {
            "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
            "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        }
    )
    body: dict[str, Any] = TestClient(create_app(settings)).get("/openapi.json").json()
    return body


def _unbounded(schema: Any, where: str, components: dict[str, Any], seen: set[str]) -> list[str]:
    """Places under ``schema`` holding an integer or number without both bounds."""
    if isinstance(schema, list):
        return [u for i, s in enumerate(schema) for u in _unbounded(s, where, components, seen)]
    if not isinstance(schema, dict):
        return []
    found: list[str] = []
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            found += _unbounded(components[name], f"{where} -> {name}", components, seen)
    if schema.get("type") in ("integer", "number"):
        low = "minimum" in schema or "exclusiveMinimum" in schema
        high = "maximum" in schema or "exclusiveMaximum" in schema
        if not (low and high):
            found.append(where)
    for key, value in schema.items():
        if key == "properties":
            for prop, sub in value.items():
                found += _unbounded(sub, f"{where}.{prop}", components, seen)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            found += _unbounded(value, where, components, seen)
    return found


def test_every_integer_input_is_bounded(tmp_path: Path) -> None:
    spec = _openapi(tmp_path)
    components = spec["components"]["schemas"]
    problems: list[str] = []
    inputs = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                inputs += 1
                problems += _unbounded(
                    param["schema"], f"{where} {param['in']} {param['name']}", components, set()
                )
            for media in op.get("requestBody", {}).get("content", {}).values():
                inputs += 1
                problems += _unbounded(media["schema"], f"{where} body", components, set())
    assert inputs > 100  # the walk saw the API, not an empty schema
    assert problems == []


def test_the_walk_finds_an_unbounded_integer() -> None:
    """The checker itself: a bare integer, one side bounded, and through a $ref."""
    components = {"Thing": {"properties": {"n": {"type": "integer", "minimum": 0}}}}
    schema = {"anyOf": [{"$ref": "#/components/schemas/Thing"}, {"type": "integer"}]}
    assert _unbounded(schema, "x", components, set()) == ["x -> Thing.n", "x"]
    bounded = {"type": "integer", "minimum": 1, "maximum": 5}
    assert _unbounded(bounded, "x", components, set()) == []
