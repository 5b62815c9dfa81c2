"""``/docs`` works offline (assets from the package) under a CSP that never allows eval or ``*``
(SPEC §3, §4.1), and the OpenAPI document declares problem responses."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from bastion.core import Bastion
from tests.conftest import Harness, make_settings


async def test_docs_page_loads_only_local_assets(harness: Harness) -> None:
    page = await harness.client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls, page.text
    for url in urls:
        assert url.startswith("/docs/"), url
        assert (await harness.client.get(url)).status_code == 200, url
    assert "<script>" not in page.text, "inline scripts would need a weaker CSP"


async def test_docs_csp_allows_own_scripts_only(harness: Harness) -> None:
    csp = (await harness.client.get("/docs")).headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-eval" not in csp
    assert "*" not in csp
    assert "frame-ancestors 'none'" in csp


async def test_api_routes_keep_the_strict_csp(harness: Harness) -> None:
    response = await harness.client.get("/openapi.json")
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )


async def test_openapi_declares_problem_responses(harness: Harness) -> None:
    document = (await harness.client.get("/openapi.json")).json()
    get_item = document["paths"]["/items/{item_id}"]["get"]["responses"]
    for status in ("401", "403", "404", "422", "429"):
        assert "application/problem+json" in get_item[status]["content"], status
    flow = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "/auth/token"
    assert "items:read" in flow["scopes"]


async def test_a_library_app_gets_local_docs_instead_of_the_cdn(tmp_path: Path) -> None:
    bastion = Bastion(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", tmp_path))
    app = FastAPI(lifespan=bastion.lifespan)
    bastion.protect(app)
    transport = httpx.ASGITransport(app=app)
    async with (
        bastion.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        assert (await client.get("/health")).status_code == 200


async def test_docs_off_takes_down_every_fastapi_docs_page(tmp_path: Path) -> None:
    """SPEC §4.1: BASTION_DOCS=false turns /docs and /openapi.json off, for a library app too."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", tmp_path, docs=False)
    bastion = Bastion(settings)
    app = FastAPI(lifespan=bastion.lifespan)
    bastion.protect(app)
    transport = httpx.ASGITransport(app=app)
    async with (
        bastion.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert (await client.get(path)).status_code == 404, path


async def test_redoc_from_a_cdn_is_not_served(harness: Harness) -> None:
    assert (await harness.client.get("/redoc")).status_code == 404
