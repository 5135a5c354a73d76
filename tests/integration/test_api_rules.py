"""Bad input, authentication, roles and cross-project access through the real API."""

from __future__ import annotations

import pytest

from certautopilot_lab.info import LabInfo
from tests.conftest import Project, Service, create_project


def _fields(response: object) -> dict[str, str]:
    body = response.json()  # type: ignore[attr-defined]
    return {e["field"]: e["message"] for e in body.get("errors", [])}


def test_no_or_bad_token_is_401(service: Service) -> None:
    assert service.client.get("/api/v1/projects").status_code == 401
    response = service.call("GET", "/projects", token="cap_not-a-token")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"common_name": ""}, "common_name"),
        ({"common_name": "a.*.example.test"}, "common_name"),
        ({"common_name": "www.example.test", "sans": ["foo*.example.test"]}, "sans[0]"),
        (
            {"common_name": "www.example.test", "sans": ["ok.example.test", "bad..example.test"]},
            "sans[1]",
        ),
        ({"common_name": "www.example.test", "key_type": "dsa-1024"}, "key_type"),
        (
            {"common_name": "www.example.test", "sans": [f"n{i}.example.test" for i in range(101)]},
            "sans",
        ),
        ({"common_name": "www.elsewhere.org"}, "common_name"),
        ({"common_name": "www.example.test", "sans": ["api.unknown.test"]}, "sans"),
        (
            {"common_name": "www.example.test", "renewal_window": {"fraction_remaining": 2}},
            "renewal_window.fraction_remaining",
        ),
        ({"common_name": "www.example.test", "unexpected": 1}, "unexpected"),
    ],
)
def test_bad_certificate_input_is_422_naming_the_field(
    service: Service, project: Project, body: dict[str, object], field: str
) -> None:
    response = service.call(
        "POST", f"/projects/{project.slug}/certificates", json={"issuer": project.issuer_id, **body}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in _fields(response), response.text


def test_unknown_names_are_each_named(service: Service, project: Project) -> None:
    response = service.call(
        "POST",
        f"/projects/{project.slug}/certificates",
        json={
            "issuer": project.issuer_id,
            "common_name": "www.example.test",
            "sans": ["a.nowhere.test", "b.nowhere.test"],
        },
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "a.nowhere.test" in detail and "b.nowhere.test" in detail


def test_challenge_override_admits_a_name_outside_zones(service: Service, project: Project) -> None:
    response = service.call(
        "POST",
        f"/projects/{project.slug}/certificates",
        json={
            "issuer": project.issuer_id,
            "common_name": "www.example.test",
            "sans": ["api.nowhere.test"],
            "challenge_overrides": {"api.nowhere.test": {"zone": "no-such-zone"}},
        },
    )
    assert response.status_code == 422
    assert "challenge_overrides.api.nowhere.test.zone" in _fields(response)


def test_idn_is_converted_to_a_label(service: Service, project: Project) -> None:
    created = service.ok(
        "POST",
        f"/projects/{project.slug}/certificates",
        202,
        json={
            "issuer": project.issuer_id,
            "common_name": "bücher.example.test",
        },
    )
    assert created["common_name"] == "xn--bcher-kva.example.test"
    service.wait_for(project.slug, created["id"], ("issued", "failed"))


def test_other_projects_are_invisible(service: Service, lab: LabInfo) -> None:
    mine = create_project(service, lab, manual_zone=False)
    outsider = service.token_for("outsider@example.test")
    for path in (
        f"/projects/{mine.slug}",
        f"/projects/{mine.slug}/certificates",
        f"/projects/{mine.slug}/issuers/{mine.issuer_id}",
        "/projects/nope",
    ):
        assert service.call("GET", path, token=outsider).status_code == 404
    theirs_slug = "outsider-proj"
    service.ok("POST", "/projects", 201, json={"slug": theirs_slug, "name": "Theirs"})
    member = {"email": "outsider@example.test", "role": "admin"}
    service.ok("POST", f"/projects/{theirs_slug}/members", 201, json=member)
    # The issuer of another project is unknown here: 422 naming the field, never a 500.
    response = service.call(
        "POST",
        f"/projects/{theirs_slug}/certificates",
        token=outsider,
        json={"issuer": mine.issuer_id, "common_name": "x.example.test"},
    )
    assert response.status_code == 422
    assert "issuer" in _fields(response)
    # An object id of another project under my project: 404.
    cert = service.ok(
        "POST",
        f"/projects/{mine.slug}/certificates",
        202,
        json={"issuer": mine.issuer_id, "common_name": "own.example.test"},
    )
    response = service.call(
        "GET", f"/projects/{theirs_slug}/certificates/{cert['id']}", token=outsider
    )
    assert response.status_code == 404


def test_roles(service: Service, lab: LabInfo) -> None:
    proj = create_project(service, lab, manual_zone=False)
    base = f"/projects/{proj.slug}"
    for email, role in (("viewer@example.test", "viewer"), ("op@example.test", "operator")):
        service.ok("POST", f"{base}/members", 201, json={"email": email, "role": role})
    viewer = service.token_for("viewer@example.test")
    operator = service.token_for("op@example.test")
    request = {"issuer": proj.issuer_id, "common_name": "roles.example.test"}

    assert service.call("GET", f"{base}/certificates", token=viewer).status_code == 200
    denied = service.call("POST", f"{base}/certificates", token=viewer, json=request)
    assert denied.status_code == 403
    assert "operator" in denied.json()["detail"]

    cert = service.ok("POST", f"{base}/certificates", 202, token=operator, json=request)
    service.wait_for(proj.slug, cert["id"], ("issued",))
    assert (
        service.call("GET", f"{base}/certificates/{cert['id']}/key.pem", token=operator).status_code
        == 403
    )
    assert (
        service.call(
            "POST",
            f"{base}/certificates/{cert['id']}/revoke",
            token=operator,
            json={"reason": "superseded"},
        ).status_code
        == 403
    )
    zone = service.call(
        "POST", f"{base}/zones", token=operator, json={"name": "x.test", "provider": "manual"}
    )
    assert zone.status_code == 403
    assert zone.json()["detail"] == (
        "Adding a DNS zone needs the admin role in this project; you are operator"
    )
    target = service.call(
        "POST",
        f"{base}/targets",
        token=operator,
        json={"name": "hook", "kind": "webhook", "webhook": {"url": "https://127.0.0.1:1/v1"}},
    )
    assert target.status_code == 403
    assert target.json()["detail"] == (
        "Adding a distribution target needs the admin role in this project; you are operator"
    )
    assert (
        service.call(
            "POST",
            f"{base}/members",
            token=operator,
            json={"email": "x@example.test", "role": "admin"},
        ).status_code
        == 403
    )
    key = service.call("GET", f"{base}/certificates/{cert['id']}/key.pem")
    assert key.status_code == 200 and "PRIVATE KEY" in key.text
    types = [e["type"] for e in service.timeline(proj.slug, cert["id"])["events"]]
    assert "key.exported" in types


def test_list_filters_and_pagination(service: Service, lab: LabInfo) -> None:
    proj = create_project(service, lab, manual_zone=False)
    base = f"/projects/{proj.slug}/certificates"
    ids = [
        service.ok(
            "POST",
            base,
            202,
            json={"issuer": proj.issuer_id, "common_name": f"list{i}.example.test"},
        )["id"]
        for i in range(5)
    ]
    for cert_id in ids:
        service.wait_for(proj.slug, cert_id, ("issued",))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = service.ok("GET", base, params=params)
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert len(service.ok("GET", base, params={"status": "issued"})["items"]) == 5
    assert service.ok("GET", base, params={"status": "failed"})["items"] == []
    assert len(service.ok("GET", base, params={"q": "list3"})["items"]) == 1
    far = service.ok("GET", base, params={"expiring_before": "2999-01-01T00:00:00Z"})
    assert len(far["items"]) == 5
    assert (
        service.ok("GET", base, params={"expiring_before": "2000-01-01T00:00:00Z"})["items"] == []
    )
    bad = service.call("GET", base, params={"status": "nonsense"})
    assert bad.status_code == 422 and "status" in _fields(bad)
    assert service.call("GET", base, params={"cursor": "garbage!"}).status_code == 422
    assert service.call("GET", base, params={"limit": 5000}).status_code == 422


def test_a_nul_or_control_character_is_a_422_naming_the_field_never_a_500(
    service: Service, project: Project
) -> None:
    """PostgreSQL cannot store a NUL: ids and e-mail addresses are checked at the edge, and
    whatever still reaches the database with one is a 422 saying so, with nothing written."""
    p = project.slug
    attach = service.call(
        "PUT", f"/projects/{p}/certificates/any/targets", json={"targets": ["a\u0000b"]}
    )
    assert attach.status_code == 422 and "targets[0]" in _fields(attach), attach.text
    deploy = service.call(
        "POST", f"/projects/{p}/certificates/any/deploy", json={"targets": ["ok", "x y"]}
    )
    assert deploy.status_code == 422 and "targets[1]" in _fields(deploy), deploy.text
    for email in ("a\u0000@example.test", "a\n@example.test"):
        member = service.call(
            "POST", f"/projects/{p}/members", json={"email": email, "role": "viewer"}
        )
        assert member.status_code == 422 and "email" in _fields(member), member.text
    members = service.ok("GET", f"/projects/{p}/members")
    assert all("\u0000" not in m["email"] and "\n" not in m["email"] for m in members)
    for path in (f"/projects/{p}/certificates/a%00b", f"/projects/{p}/targets/a%00b"):
        assert service.call("GET", path).status_code in (404, 422)  # 422 on PostgreSQL
    search = service.call("GET", f"/projects/{p}/certificates", params={"q": "a\u0000b"})
    assert search.status_code in (200, 422), search.text
    assert search.headers["content-type"].startswith("application/")
