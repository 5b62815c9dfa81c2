"""No credential, another scheme, or an empty bearer token (SPEC §3: the 401 challenges).

Sending nothing gets the bare ``Bearer realm="bastion"`` challenge (RFC 6750 §3.1: no error
code when the request carried no authentication); sending a bearer token that is empty or bad
gets ``error="invalid_token"``.
"""

from __future__ import annotations

import base64

import pytest

from tests.conftest import Harness
from tests.security.conftest import Account
from tests.security.helpers import assert_invalid_token, assert_missing_credentials

PROTECTED_ROUTES = [
    ("GET", "/secure-data"),
    ("GET", "/auth/me"),
    ("GET", "/items"),
    ("POST", "/items"),
    ("GET", "/items/1"),
    ("PATCH", "/items/1"),
    ("DELETE", "/items/1"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/password"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED_ROUTES)
async def test_request_without_credentials_gets_401_with_a_bare_bearer_challenge(
    harness: Harness, method: str, path: str
) -> None:
    response = await harness.client.request(method, path)
    assert_missing_credentials(response)


@pytest.mark.parametrize(("method", "path"), PROTECTED_ROUTES)
async def test_json_request_without_credentials_gets_401_not_a_body_error(
    harness: Harness, method: str, path: str
) -> None:
    response = await harness.client.request(method, path, json={"name": "x"})
    assert_missing_credentials(response)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"alice:correct horse battery staple").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Digest username=alice",
        "Token abc.def.ghi",
        "Bearer-ish abc",
        "JWT abc.def.ghi",
        "",
    ],
    ids=["basic", "basic-empty", "digest", "token", "bearer-ish", "jwt", "empty-header"],
)
async def test_another_authorization_scheme_counts_as_missing_credentials(
    harness: Harness, authorization: str
) -> None:
    response = await harness.client.get("/secure-data", headers={"Authorization": authorization})
    assert_missing_credentials(response)


async def test_basic_credentials_of_a_real_user_do_not_authenticate(
    harness: Harness, alice: Account
) -> None:
    basic = base64.b64encode(b"alice:correct horse battery staple").decode()
    response = await harness.client.get("/secure-data", headers={"Authorization": f"Basic {basic}"})
    assert_missing_credentials(response)


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Bearer    ", "bearer "])
async def test_bearer_scheme_with_an_empty_token_is_an_invalid_token(
    harness: Harness, authorization: str
) -> None:
    response = await harness.client.get("/secure-data", headers={"Authorization": authorization})
    assert_invalid_token(response)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
async def test_bearer_scheme_name_is_case_insensitive(
    harness: Harness, alice: Account, scheme: str
) -> None:
    """RFC 7235 §2.1: auth-scheme is case-insensitive, so a good token works whatever the case."""
    response = await harness.client.get(
        "/secure-data", headers={"Authorization": f"{scheme} {alice.access_token}"}
    )
    assert response.status_code == 200, response.text


async def test_token_in_the_query_string_does_not_authenticate(
    harness: Harness, alice: Account
) -> None:
    """RFC 6750 §2.3 (URI query parameter) is not offered: it leaks tokens into logs."""
    response = await harness.client.get("/secure-data", params={"access_token": alice.access_token})
    assert_missing_credentials(response)
    assert alice.access_token not in response.text
