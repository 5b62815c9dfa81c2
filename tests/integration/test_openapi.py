"""``/openapi.json`` and ``/docs`` (SPEC §4.1)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from tests.conftest import Harness
from tests.integration.conftest import StartApp
from tests.integration.helpers import assert_problem

PROTECTED_OPERATIONS = [
    ("get", "/items"),
    ("post", "/items"),
    ("get", "/items/{item_id}"),
    ("patch", "/items/{item_id}"),
    ("delete", "/items/{item_id}"),
    ("get", "/secure-data"),
    ("get", "/auth/me"),
    ("post", "/auth/logout"),
    ("post", "/auth/password"),
]


async def openapi(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def password_flow_schemes(document: dict[str, Any]) -> set[str]:
    schemes = document.get("components", {}).get("securitySchemes", {})
    return {
        name
        for name, scheme in schemes.items()
        if scheme.get("type") == "oauth2"
        and scheme.get("flows", {}).get("password", {}).get("tokenUrl") == "/auth/token"
    }


async def test_openapi_declares_the_oauth2_password_flow(harness: Harness) -> None:
    document = await openapi(harness)

    assert password_flow_schemes(document), document.get("components", {})


@pytest.mark.parametrize(("method", "path"), PROTECTED_OPERATIONS)
async def test_protected_operations_declare_their_security(
    harness: Harness, method: str, path: str
) -> None:
    document = await openapi(harness)
    schemes = password_flow_schemes(document)

    operation = document["paths"][path][method]

    requirements = operation.get("security", document.get("security", []))
    assert any(set(requirement) & schemes for requirement in requirements), operation


async def test_operations_name_the_scope_they_need(harness: Harness) -> None:
    document = await openapi(harness)
    schemes = password_flow_schemes(document)

    def scopes_of(method: str, path: str) -> set[str]:
        return {
            scope
            for requirement in document["paths"][path][method].get("security", [])
            for name, scopes in requirement.items()
            if name in schemes
            for scope in scopes
        }

    assert scopes_of("get", "/items") == {"items:read"}
    assert scopes_of("post", "/items") == {"items:write"}


@pytest.mark.parametrize(("method", "path"), [("get", "/public"), ("get", "/health")])
async def test_public_operations_declare_no_security(
    harness: Harness, method: str, path: str
) -> None:
    document = await openapi(harness)

    assert not document["paths"][path][method].get("security")


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/items", {"401", "403", "422", "429"}),
        ("post", "/items", {"401", "403", "422", "429"}),
        ("get", "/items/{item_id}", {"401", "403", "404", "422", "429"}),
        ("patch", "/items/{item_id}", {"401", "403", "404", "422", "429"}),
        ("delete", "/items/{item_id}", {"401", "403", "404", "422", "429"}),
    ],
)
async def test_operations_declare_their_error_responses_as_problems(
    harness: Harness, method: str, path: str, statuses: set[str]
) -> None:
    """SPEC §4.1: per route, the error responses it can give, as problem+json."""
    document = await openapi(harness)

    responses = document["paths"][path][method]["responses"]

    assert statuses <= set(responses), sorted(responses)
    for status in statuses:
        assert "application/problem+json" in responses[status].get("content", {}), (
            status,
            responses[status],
        )


async def test_docs_page_is_served_with_local_assets(harness: Harness) -> None:
    """SPEC §4.1: the docs page works offline (assets served locally), and SPEC §3: its CSP lets
    only its own assets run, never ``unsafe-eval`` or ``*``."""
    response = await harness.client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "unsafe-eval" not in csp
    assert "*" not in csp
    assets = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', response.text)
    assert assets
    for asset in assets:
        url = urlsplit(urljoin("http://testserver/docs", asset))
        assert url.netloc == "testserver", f"/docs loads {asset} from another host"
        if url.path.endswith((".js", ".css")):
            fetched = await harness.client.get(url.path)
            assert fetched.status_code == 200, asset


async def test_docs_off_hides_docs_and_schema(start_app: StartApp) -> None:
    harness = await start_app(docs=False)

    for path in ("/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"):
        response = await harness.client.get(path)
        assert_problem(response, 404)
    assert (await harness.client.get("/public")).status_code == 200
