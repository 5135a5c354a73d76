"""SSRF through URLs the service did not get from the user: an ACME directory that
redirects, or lists URLs, on an address the operator did not allow; and webhook, AD CS and
notification destinations whose name changes its answer after the save-time check.

The refused address is [::1] (the tests allow 127.0.0.0/8 only), and a real listener sits
on it: each test shows the clear error a user sees and that nothing reached the listener.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from certautopilot.distribution.interfaces import DistributionError
from certautopilot.errors import IssuerError, NotificationError
from certautopilot.issuers.adcs.client import PT_REFUSED, AdcsClient, AdcsSettings
from certautopilot.notifications.interfaces import Message
from certautopilot.notifications.senders import WebhookConfig as ChannelConfig
from certautopilot.notifications.senders import WebhookSender
from tests.conftest import Project, Service
from tests.ssrf_servers import (
    RefusedListener,
    Seen,
    Tls,
    make_tls,
    refused_listener,
    serve,
    tls_dir,
)

NONCE = "bm9uY2UtMQ"  # base64url, as Replay-Nonce must be


@pytest.fixture
def tls() -> Iterator[Tls]:
    with tls_dir() as directory:
        yield make_tls(directory, "127.0.0.1", "rebind.test")


@pytest.fixture
def target() -> Iterator[RefusedListener]:
    with refused_listener() as listener:
        yield listener


def fake_acme(entries: Callable[[str], dict[str, str]]) -> Callable[[Seen], Any]:
    """An ACME server on 127.0.0.1 whose directory lists ``entries(own base URL)``;
    answers a nonce, an account and (when listed here) an order."""

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        base = f"https://{seen.headers['host']}"
        directory = entries(base)
        headers = {"Replay-Nonce": NONCE, "Content-Type": "application/json"}
        if seen.path == "/dir":  # no nonce here: the client must ask newNonce for one
            return 200, {"Content-Type": "application/json"}, json.dumps(directory).encode()
        if seen.path == "/nonce":
            return 200, headers, b""
        if seen.path == "/acct":
            headers["Location"] = f"{base}/acct/1"
            return 201, headers, json.dumps({"status": "valid"}).encode()
        if seen.path.startswith("/redirect"):
            return 302, {"Location": directory["redirect"]}, b""
        return 404, headers, b"{}"

    return answer


def acme_body(url: str, tls: Tls) -> dict[str, Any]:
    return {
        "name": "elsewhere",
        "kind": "acme",
        "acme": {
            "directory_url": url,
            "contact_email": "ops@example.test",
            "terms_agreed": True,
            "ca_bundle_pem": tls.cert_pem,
        },
    }


def _refused(response: Any) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["acme.directory_url"], errors
    message: str = errors[0]["message"]
    assert "::1 is refused" in message and "CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS" in message
    return message


def test_a_directory_that_redirects_to_a_refused_address_is_refused(
    service: Service, project: Project, tls: Tls, target: RefusedListener
) -> None:
    answer = fake_acme(lambda base: {"redirect": f"https://[::1]:{target.port}/dir"})
    with serve(answer, tls) as ca:
        response = service.call(
            "POST",
            f"/projects/{project.slug}/issuers",
            json=acme_body(f"https://127.0.0.1:{ca.port}/redirect", tls),
        )
        _refused(response)
        assert [s.path for s in ca.seen] == ["/redirect"]
    assert target.connections() == 0
    names = [i["name"] for i in service.ok("GET", f"/projects/{project.slug}/issuers")]
    assert "elsewhere" not in names


def test_a_directory_whose_new_nonce_is_on_a_refused_address_is_refused(
    service: Service, project: Project, tls: Tls, target: RefusedListener
) -> None:
    answer = fake_acme(
        lambda base: {
            "newNonce": f"https://[::1]:{target.port}/nonce",
            "newAccount": f"{base}/acct",
            "newOrder": f"{base}/order",
        }
    )
    with serve(answer, tls) as ca:
        response = service.call(
            "POST",
            f"/projects/{project.slug}/issuers",
            json=acme_body(f"https://127.0.0.1:{ca.port}/dir", tls),
        )
        message = _refused(response)
        assert f"[::1]:{target.port}/nonce" in message  # the URL the directory listed
        assert [s.path for s in ca.seen] == ["/dir"]
    assert target.connections() == 0


def test_an_order_whose_urls_are_on_a_refused_address_fails_the_certificate(
    service: Service, project: Project, tls: Tls, target: RefusedListener
) -> None:
    """The account is fine; the CA answers the new order with authorization URLs on [::1]:
    the worker never connects there and the certificate fails, saying why."""
    refused_base = f"https://[::1]:{target.port}"

    def entries(base: str) -> dict[str, str]:
        return {"newNonce": f"{base}/nonce", "newAccount": f"{base}/acct", "newOrder": f"{base}/o"}

    plain = fake_acme(entries)

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path != "/o":
            result: tuple[int, dict[str, str], bytes] = plain(seen)
            return result
        order = {
            "status": "pending",
            "identifiers": [{"type": "dns", "value": "rebound.example.test"}],
            "authorizations": [f"{refused_base}/authz/1"],
            "finalize": f"{refused_base}/finalize/1",
        }
        headers = {"Replay-Nonce": NONCE, "Location": f"{refused_base}/order/1"}
        return 201, headers, json.dumps(order).encode()

    with serve(answer, tls) as ca:
        issuer = service.ok(
            "POST",
            f"/projects/{project.slug}/issuers",
            201,
            json=acme_body(f"https://127.0.0.1:{ca.port}/dir", tls),
        )
        created = service.ok(
            "POST",
            f"/projects/{project.slug}/certificates",
            202,
            json={"issuer": issuer["id"], "common_name": "rebound.example.test"},
        )
        body = service.wait_for(project.slug, created["id"], ("issued", "failed"), timeout=90)
        assert "/o" in [s.path for s in ca.seen]
    assert body["status"] == "failed", body
    assert "::1 is refused" in body["error"]["detail"], body["error"]
    assert target.connections() == 0


# ----------------------------------------------------------------- names that rebind


class Rebinding:
    """``rebind.test`` answers 127.0.0.1 to its first look-up (the save-time or pre-send
    check) and ::1 to every later one, as an attacker's DNS server would."""

    def __init__(self) -> None:
        self.lookups = 0
        self._real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
        if name != "rebind.test":
            return self._real(host, port, *args, **kwargs)
        self.lookups += 1
        address = "127.0.0.1" if self.lookups == 1 else "::1"
        number = int(port or 0)
        if ipaddress.ip_address(address).version == 6:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))]


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Rebinding:
    stub = Rebinding()
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


def test_a_webhook_target_whose_name_rebinds_is_refused_at_connect(
    rebinding: Rebinding, tls: Tls, target: RefusedListener
) -> None:
    import asyncio
    import datetime as dt

    from certautopilot.distribution.interfaces import Material
    from certautopilot.distribution.targets.webhook import WebhookConfig, WebhookTarget

    material = Material(
        certificate_id="c-1",
        version_id="v-1",
        version=1,
        common_name="rebound.example.test",
        names=("rebound.example.test",),
        serial="01",
        fingerprint_sha256="00" * 32,
        not_after=dt.datetime.now(dt.UTC),
        cert_pem=tls.cert_pem,
        chain_pem="",
    )

    config = WebhookConfig(
        url=f"https://rebind.test:{target.port}/hook",
        secret="s" * 32,
        ca_bundle_pem=tls.cert_pem,
    )
    hook = WebhookTarget(config, delivery_id="d-1")
    with pytest.raises(DistributionError, match=r"rebind\.test is refused") as caught:
        asyncio.run(hook.deploy(material, {}))
    assert not caught.value.retryable
    assert rebinding.lookups == 2  # the pre-delivery check, then the connection's own
    assert target.connections() == 0


def test_a_notification_webhook_whose_name_rebinds_is_refused_at_connect(
    rebinding: Rebinding, target: RefusedListener
) -> None:
    sender = WebhookSender(ChannelConfig(url=f"http://rebind.test:{target.port}/chat"))
    message = Message(
        event="cert.failed",
        subject="s",
        text="t",
        recipients=(),
        project_id="p",
        certificate_id=None,
        link=None,
    )
    with pytest.raises(NotificationError, match=r"rebind\.test is refused"):
        sender.send(message)
    assert target.connections() == 0


def test_an_adcs_url_whose_name_rebinds_is_refused_at_connect(
    rebinding: Rebinding, tls: Tls, target: RefusedListener
) -> None:
    client = AdcsClient(
        AdcsSettings(
            url=f"https://rebind.test:{target.port}/certsrv",
            auth="basic",
            username="u",
            password="p",
            ca_bundle_pem=tls.cert_pem,
        )
    )
    rebinding.lookups = 1  # the save-time check happened; every look-up now answers ::1
    with client.session() as session, pytest.raises(IssuerError) as caught:
        session.home()
    assert caught.value.problem_type == PT_REFUSED
    assert "rebind.test is refused" in str(caught.value)
    assert target.connections() == 0


# ----------------------------------------------------------------- save-time rules


def test_credentials_inside_a_url_are_refused_on_their_field(
    service: Service, project: Project, tls: Tls
) -> None:
    password = "hunter2-do-not-echo"
    p = project.slug
    acme = acme_body(f"https://ops:{password}@127.0.0.1:1/dir", tls)
    response = service.call("POST", f"/projects/{p}/issuers", json=acme)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["acme.directory_url"]
    assert "credentials" in response.text and password not in response.text
    hook = {
        "name": "with-password",
        "kind": "webhook",
        "webhook": {"url": f"https://ops:{password}@127.0.0.1:1/hook", "secret": "s" * 32},
    }
    response = service.call("POST", f"/projects/{p}/targets", json=hook)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["webhook.url"]
    assert password not in response.text


@pytest.mark.parametrize("region", ["eu-west-1.evil.test#", "169.254.169.254", "EU-WEST-1", ""])
def test_an_aws_acm_region_must_be_a_region_name(
    service: Service, project: Project, region: str
) -> None:
    body = {
        "name": "acm",
        "kind": "aws-acm",
        "aws_acm": {"region": region, "access_key_id": "AKIDEXAMPLE", "secret_access_key": "x"},
    }
    response = service.call("POST", f"/projects/{project.slug}/targets", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["aws_acm.region"]


def test_an_smtp_host_whose_name_rebinds_is_refused_at_connect(
    rebinding: Rebinding, target: RefusedListener
) -> None:
    from certautopilot.notifications.senders import EmailConfig, SmtpSender

    sender = SmtpSender(
        EmailConfig(host="rebind.test", port=target.port, security="none", from_addr="a@b.test")
    )
    message = Message(
        event="cert.failed",
        subject="s",
        text="t",
        recipients=("ops@example.test",),
        project_id="p",
        certificate_id=None,
        link=None,
    )
    rebinding.lookups = 1  # the channel was saved; every look-up now answers ::1
    with pytest.raises(NotificationError, match=r"rebind\.test is refused"):
        sender.send(message)
    assert target.connections() == 0


def test_ssh_and_haproxy_hosts_whose_name_rebinds_are_refused_at_connect(
    rebinding: Rebinding, target: RefusedListener
) -> None:
    import asyncio

    import asyncssh

    from certautopilot.distribution.schemas import FilesSpec
    from certautopilot.distribution.targets.haproxy import HaproxyConfig, HaproxyTarget
    from certautopilot.distribution.targets.ssh import SshConfig, SshTarget

    host_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    ssh = SshTarget(
        SshConfig(
            host="rebind.test",
            port=target.port,
            username="deploy",
            host_key=host_key,
            files=FilesSpec(directory="/srv/tls"),
            password="pw",
        )
    )
    haproxy = HaproxyTarget(
        HaproxyConfig(runtime_api=f"rebind.test:{target.port}", cert_file="/etc/haproxy/x.pem")
    )
    rebinding.lookups = 1  # saved and checked; every look-up now answers ::1
    with pytest.raises(DistributionError, match=r"rebind\.test is refused") as caught:
        asyncio.run(ssh._connect())
    assert not caught.value.retryable
    with pytest.raises(DistributionError, match=r"rebind\.test is refused"):
        asyncio.run(haproxy._command("show ssl cert"))
    assert target.connections() == 0
