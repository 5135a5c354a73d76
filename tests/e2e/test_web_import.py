"""The import page in Chromium (issue #16): files dropped on the drop zone are listed,
posted by the form and imported; dropping the same certificate again merges it; a key that
belongs to another certificate is refused on the page, and nothing is imported.

The drop is a real ``drop`` event carrying a ``DataTransfer`` with ``File`` objects, as a
file manager's drag gives the page; Playwright cannot drag from outside the browser.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import Service
from tests.e2e.conftest import go, sign_in, web_user
from tests.integration.test_imports import make_ca, make_leaf, pem

DROP = """
([zone, files]) => {
  const transfer = new DataTransfer();
  for (const [name, b64] of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type: "application/x-pem-file" }));
  }
  zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true }));
  const dragging = zone.classList.contains("dragging");
  zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
  return dragging;
}
"""


def _drop(page: Any, files: list[tuple[str, bytes]]) -> bool:
    """Drops ``files`` on the page's drop zone; whether it showed it was being dragged onto."""
    zone = page.get_by_test_id("dropzone").element_handle()
    encoded = [(name, base64.b64encode(data).decode()) for name, data in files]
    return bool(page.evaluate(DROP, [zone, encoded]))


def _rows(page: Any) -> list[tuple[str, str]]:
    rows = page.locator("[data-testid=import-result] tbody tr")
    return [
        (row.get_attribute("data-outcome") or "", row.inner_text())
        for row in rows.element_handles()
    ]


def test_files_dropped_on_the_page_are_imported_then_merged(
    service: Service, new_page: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    slug = f"drop-{tag}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": slug})
    user = web_user(service, f"drop-{tag}@example.test", project=slug, role="admin")
    ca = make_ca()
    leaf, key = make_leaf(ca, [f"dropped-{tag}.imp.test", f"www.dropped-{tag}.imp.test"])
    chain = pem(leaf) + pem(ca[0])

    page = new_page()
    sign_in(page, user)
    page.goto(f"/p/{slug}/import")
    assert _drop(page, [("fullchain.pem", chain), ("privkey.pem", pem(key))])
    chosen = page.locator("#import-chosen")
    assert chosen.inner_text() == "2 file(s): fullchain.pem, privkey.pem"
    assert "dragging" not in (page.get_by_test_id("dropzone").get_attribute("class") or "")
    go(page, page.get_by_role("button", name="Import"))
    [(outcome, text)] = _rows(page)
    assert outcome == "imported", text
    assert f"dropped-{tag}.imp.test" in text and "(no key)" not in text

    # The inventory lists it as unmanaged, and its page opens from the result.
    page.goto(f"/p/{slug}/certificates?managed=no")
    assert page.get_by_text(f"dropped-{tag}.imp.test").first.is_visible()

    # The same certificate dropped again (alone) is merged into the one already held.
    page.goto(f"/p/{slug}/import")
    _drop(page, [("again.pem", pem(leaf))])
    assert chosen.inner_text() == "1 file(s): again.pem"
    go(page, page.get_by_role("button", name="Import"))
    [(outcome, text)] = _rows(page)
    assert outcome == "merged" and f"dropped-{tag}.imp.test" in text
    listed = service.ok("GET", f"/projects/{slug}/certificates", params={"managed": "no"})
    assert len(listed["items"]) == 1


def test_a_key_of_another_certificate_is_refused_on_the_page(
    service: Service, new_page: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    slug = f"dropbad-{tag}"
    service.ok("POST", "/projects", 201, json={"slug": slug, "name": slug})
    user = web_user(service, f"dropbad-{tag}@example.test", project=slug, role="admin")
    leaf, _ = make_leaf(make_ca(), [f"mismatch-{tag}.imp.test"])
    other = ec.generate_private_key(ec.SECP256R1())

    page = new_page()
    sign_in(page, user)
    page.goto(f"/p/{slug}/import")
    _drop(page, [("cert.pem", pem(leaf)), ("other.key", pem(other))])
    go(page, page.get_by_role("button", name="Import"))
    error = page.get_by_test_id("import-error")
    assert error.is_visible() and "does not match" in error.inner_text()
    assert page.get_by_role("alert").count() >= 1
    listed = service.ok("GET", f"/projects/{slug}/certificates", params={"managed": "no"})
    assert listed["items"] == []
