"""The certsrv double's own behaviour: control calls, a CA kept between runs."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from certautopilot.crypto import keys
from certautopilot_lab.adcs_double import AdcsDouble


def test_control_calls_need_the_token_and_decide_pending_requests(tmp_path: Path) -> None:
    csr = keys.build_csr(keys.generate_key("ecdsa-p256"), ["c.corp.test"]).decode()
    with AdcsDouble(tmp_path) as double:
        first = double.submit(csr, "WebServerApproval", "someone")
        second = double.submit(csr, "WebServerApproval", "someone")
        verify = ssl.create_default_context(cadata=double.ca_bundle_pem)
        with httpx.Client(verify=verify, base_url=double.url) as http:
            url = f"/_double/approve?ReqID={first.id}"
            assert http.post(url).status_code == 403
            token = {"X-Double-Control": double.control_token}
            assert http.post(url, headers=token).status_code == 200
            deny = http.post(f"/_double/deny?ReqID={second.id}&message=no", headers=token)
            assert deny.status_code == 200
            assert http.post(url, headers=token).status_code == 400  # not pending any more
        assert (first.status, second.status, second.disposition) == ("issued", "denied", "no")
        assert double.pending() == []
        root = double.ca.root
    with AdcsDouble(tmp_path) as again:  # same directory: the same CA, clients keep trusting it
        assert again.ca.root == root
