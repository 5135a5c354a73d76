"""Browser: a first run without a terminal session of one's own. ``certautopilot user
invite`` (what ``make demo`` prints) gives a link that lets the first admin choose a
password and signs them in, once; a member added in the web UI gets such a link too."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import Project, Service
from tests.e2e.conftest import WebUser, go, screenshot, sign_in, web_user

pytestmark = pytest.mark.lab

NEW_PASSWORD = "a long new passphrase"


def choose_password(page: Any, password: str, again: str | None = None) -> None:
    page.get_by_label("New password").fill(password)
    page.get_by_label("The same password again").fill(password if again is None else again)
    page.get_by_role("button", name="Set password and sign in").click()


def test_cli_invite_link_sets_the_first_password_once(service: Service, new_page: Any) -> None:
    email = f"first-{uuid.uuid4().hex[:6]}@example.test"
    out = subprocess.run(
        [sys.executable, "-m", "certautopilot.cli", "user", "invite", "--email", email],
        env=service.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    link = urlsplit(out)
    assert link.path.startswith("/invite/") and out.startswith(service.settings.public_url)
    page = new_page()
    page.goto(link.path)
    assert page.locator("[data-testid=invite-email]").inner_text() == email
    screenshot(page, "invitation-choose-password")
    choose_password(page, NEW_PASSWORD, again="something else")
    assert "differ" in page.get_by_role("alert").inner_text()
    choose_password(page, "short")  # the browser's minlength stops it: still on the form
    assert page.get_by_label("New password").evaluate("e => e.validity.tooShort")
    choose_password(page, NEW_PASSWORD)
    page.wait_for_url(lambda url: "/invite/" not in url)
    assert email in page.locator("header").inner_text()  # signed in

    other = new_page()  # the link works once
    other.goto(link.path)
    assert "used already or has expired" in other.locator("[data-testid=invite-dead]").inner_text()
    sign_in(other, WebUser(email, NEW_PASSWORD))
    assert email in other.locator("header").inner_text()


def test_member_added_in_the_ui_gets_a_sign_in_link(
    service: Service, project: Project, new_page: Any
) -> None:
    admin = web_user(service, "admin@example.test")
    page = new_page()
    sign_in(page, admin)
    page.goto(f"/p/{project.slug}/settings/members")
    email = f"new-{uuid.uuid4().hex[:6]}@example.test"
    page.get_by_label("Email", exact=True).fill(email)
    page.locator("#role").select_option("operator")
    go(page, page.get_by_role("button", name="Add member"))
    shown = page.locator("[data-testid=invite-link]").inner_text().strip()
    assert email in page.locator("[data-testid=invitation]").inner_text()
    row = page.locator(f"[data-testid=member][data-email='{email}']")
    assert "sign-in link sent" in row.inner_text()
    listed = page.locator(f"[data-testid=pending-invitation][data-email='{email}']")
    expires = datetime.fromisoformat(listed.locator("time").get_attribute("datetime"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    assert expires.strftime("%Y-%m-%d %H:%M") in listed.inner_text() and "(operator)" in (
        listed.inner_text()
    )
    screenshot(page, "members-invitation-link")
    assert "/invite/" not in page.url  # the secret is on the page, not in its address

    invited = new_page()
    invited.goto(urlsplit(shown).path)
    choose_password(invited, NEW_PASSWORD)
    invited.wait_for_url(f"**/p/{project.slug}/certificates")
    assert invited.locator("[data-testid=role]").inner_text() == "operator"

    page.reload()
    row = page.locator(f"[data-testid=member][data-email='{email}']")
    assert row.locator("[data-testid=no-password]").count() == 0
    assert page.locator(f"[data-testid=pending-invitation][data-email='{email}']").count() == 0
