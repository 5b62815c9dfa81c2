"""``/docs``: Swagger UI served from the installed package, never from a CDN (SPEC §4.1).

No inline script anywhere (the initialiser is its own small route), so the page's CSP can be
``script-src 'self'``: no ``unsafe-inline`` for scripts, never ``unsafe-eval`` or ``*``.
"""

from __future__ import annotations

import json
from html import escape

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
REDIRECT_PATH = "/docs/oauth2-redirect"
INIT_PATH = "/docs/init.js"

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
"""Swagger UI's own scripts may run and call this API; inline *styles* are allowed because its
React components set style attributes, which cannot run code."""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{init}"></script>
</body>
</html>
"""

_REDIRECT_PAGE = """<!doctype html>
<html lang="en"><body><script src="{assets}/oauth2-redirect.js"></script></body></html>
"""


def remove_fastapi_docs(app: FastAPI, *, keep_openapi: bool) -> None:
    """Take down FastAPI's own ``/docs``, ``/redoc`` and OAuth2 redirect pages, which load their
    assets from a CDN; without docs (``BASTION_DOCS=false``) the OpenAPI document goes too."""
    paths = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    if not keep_openapi:
        paths.add(app.openapi_url)
        app.openapi_url = None
    app.router.routes[:] = [r for r in app.router.routes if _route_path(r) not in paths - {None}]
    app.docs_url = app.redoc_url = app.swagger_ui_oauth2_redirect_url = None


def docs_routes(app: FastAPI, openapi_url: str) -> list[BaseRoute]:
    """Local docs routes in place of FastAPI's CDN-backed ones (which
    :func:`remove_fastapi_docs` took down), for the caller to add where they belong."""
    app.docs_url = DOCS_PATH
    app.swagger_ui_oauth2_redirect_url = REDIRECT_PATH
    page = _PAGE.format(title=escape(app.title), assets=ASSETS_PATH, init=INIT_PATH)
    redirect_page = _REDIRECT_PAGE.format(assets=ASSETS_PATH)
    init_script = _init_script(openapi_url)
    headers = {"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"}

    async def docs_page() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    async def docs_init() -> Response:
        return Response(init_script, media_type="text/javascript", headers=headers)

    async def docs_redirect() -> HTMLResponse:
        return HTMLResponse(redirect_page, headers=headers)

    return [
        APIRoute(DOCS_PATH, docs_page, include_in_schema=False),
        APIRoute(INIT_PATH, docs_init, include_in_schema=False),
        APIRoute(REDIRECT_PATH, docs_redirect, include_in_schema=False),
        Mount(
            ASSETS_PATH,
            app=StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
            name="docs-assets",
        ),
    ]


def _init_script(openapi_url: str) -> str:
    config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": False,
        "layout": "BaseLayout",
    }
    return (
        "window.addEventListener('load', function () {\n"
        f"  var config = {json.dumps(config)};\n"
        "  config.presets = [SwaggerUIBundle.presets.apis];\n"
        f"  config.oauth2RedirectUrl = window.location.origin + {json.dumps(REDIRECT_PATH)};\n"
        "  window.ui = SwaggerUIBundle(config);\n"
        "});\n"
    )


def _route_path(route: BaseRoute) -> str | None:
    if isinstance(route, Route | Mount):
        return route.path
    return None
