"""Conventions every response follows (SPEC §3): problem+json errors, request ids, security
headers."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Harness
from tests.integration.helpers import assert_problem, bearer

API_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": API_CSP,
}
GENERATED_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)


async def test_an_unknown_route_is_a_404_problem(harness: Harness) -> None:
    response = await harness.client.get("/no/such/route")

    body = assert_problem(response, 404)
    assert body["title"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/public"), ("POST", "/health"), ("GET", "/auth/token"), ("PUT", "/items")],
)
async def test_a_wrong_method_is_a_405_problem(harness: Harness, method: str, path: str) -> None:
    response = await harness.client.request(method, path)

    assert_problem(response, 405)
    assert response.headers.get("allow")


@pytest.mark.parametrize("path", ["/public", "/no/such/route", "/auth/me"])
async def test_every_response_has_a_request_id(harness: Harness, path: str) -> None:
    first = await harness.client.get(path)
    second = await harness.client.get(path)

    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "request_id", ["abc", "req-42_x.y", "A" * 128, "0f8fad5b-d9cb-469f-a165-70867728950e"]
)
async def test_a_valid_client_request_id_is_echoed(harness: Harness, request_id: str) -> None:
    for path in ("/public", "/no/such/route", "/auth/me"):
        response = await harness.client.get(path, headers={"X-Request-ID": request_id})
        assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["bad id!", "A" * 129, "", "a/b", "x\u00e9", "id;drop", "line\tbreak"],
    ids=["space-bang", "too-long", "empty", "slash", "non-ascii", "semicolon", "tab"],
)
async def test_an_invalid_client_request_id_is_replaced(harness: Harness, request_id: str) -> None:
    response = await harness.client.get(
        "/public", headers={"X-Request-ID": request_id.encode("utf-8")}
    )

    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert echoed != request_id
    assert GENERATED_ID.fullmatch(echoed)


async def test_security_headers_are_on_success_and_error_responses(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    created = await harness.client.post("/items", json={"name": "x"}, headers=headers)
    responses = {
        200: await harness.client.get("/public"),
        201: created,
        204: await harness.client.delete(f"/items/{created.json()['id']}", headers=headers),
        400: await harness.client.post("/auth/token", data={}),
        401: await harness.client.get("/auth/me"),
        403: await harness.client.post(
            "/items",
            json={"name": "x"},
            headers=bearer((await harness.login("alice", scope="items:read"))["access_token"]),
        ),
        404: await harness.client.get("/no/such/route"),
        405: await harness.client.delete("/public"),
        415: await harness.client.post(
            "/items", content="x", headers={**headers, "Content-Type": "text/plain"}
        ),
        422: await harness.client.post("/items", json={"name": ""}, headers=headers),
    }

    for status, response in responses.items():
        assert response.status_code == status, (status, response.text)
        assert_security_headers(response)
        assert response.headers.get("x-request-id")


async def test_a_validation_problem_lists_errors_without_values(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    marker = "zz-marker-value-zz"

    response = await harness.client.post(
        "/items", json={"name": "", "description": 5, "owner_id": marker}, headers=headers
    )

    body = assert_problem(response, 422)
    assert isinstance(body["errors"], list)
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "name"), ("body", "owner_id")}
    assert marker not in response.text


async def test_a_malformed_json_body_is_a_problem_not_a_500(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.post(
        "/items",
        content=b'{"name": ',
        headers={**headers, "Content-Type": "application/json"},
    )

    assert response.status_code in (400, 422)
    assert_problem(response, response.status_code)


async def test_errors_that_depend_on_credentials_are_not_cached(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    reader = bearer((await harness.login("alice", scope="items:read"))["access_token"])

    for response in (
        await harness.client.get("/auth/me"),
        await harness.client.get("/auth/me", headers=bearer("bad")),
        await harness.client.post("/items", json={"name": "x"}, headers=reader),
        await harness.client.get("/auth/me", headers=headers),
    ):
        assert "no-store" in response.headers["cache-control"], response.status_code
