"""``/docs``: the Swagger UI, served from installed files so it works on a closed network.

FastAPI's own page loads Swagger UI from a CDN (blank without Internet access) and starts it
with an inline script, which the Content-Security-Policy (``api.security_headers``) refuses.
Here the Swagger UI's script and stylesheet come from the ``fastapi-offline`` package and
the start is a static file of ours (``docs_assets/swagger-init.js``), all under
``/docs/assets``, so the page needs no exception to the policy. ReDoc is not offered: it
injects inline styles.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = DOCS + "/assets"
HERE = Path(__file__).parent


def page(title: str, openapi_url: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-url="{openapi_url}"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/swagger-init.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serves ``/docs`` and its files; the app is built with ``docs_url=None``."""
    assert app.openapi_url is not None
    html = page(f"{app.title} API", app.openapi_url)
    app.mount(
        ASSETS,
        StaticFiles(directory=HERE / "docs_assets", packages=[("fastapi_offline", "static")]),
        name="docs-assets",
    )

    @app.get(DOCS, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(html)
