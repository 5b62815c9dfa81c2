"""Attacks on ``POST /auth/token`` (SPEC §3, §4.2): credentials in URLs, scope escalation,
parameter smuggling and content-type confusion (enumeration: ``test_user_enumeration.py``).

Every answer here is the OAuth2 error body (RFC 6749 §5.2) with ``Cache-Control: no-store``.
Each test stays under the login limit of 10 grants per minute per IP (SPEC §5).
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD, Harness
from tests.security.conftest import Account
from tests.security.helpers import assert_no_store, assert_oauth_error, bearer

TOKEN = "/auth/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WRONG_PASSWORD = "Wrong-Password-Marker-5d0c"


def password_form(username: str, password: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password, **extra}


# ------------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    "param",
    ["password", "token", "refresh_token", "access_token", "api_key", "client_secret", "Password"],
)
async def test_credentials_in_the_query_string_are_refused_with_invalid_request(
    harness: Harness, alice: Account, param: str
) -> None:
    secret_value = "Query-Secret-Marker-9f31"
    response = await harness.client.post(
        TOKEN,
        params={param: secret_value},
        data=password_form("alice", STRONG_PASSWORD),
    )
    assert_oauth_error(response, "invalid_request")
    assert secret_value not in response.text
    assert STRONG_PASSWORD not in response.text


@pytest.mark.parametrize(
    "query", ["pass%77ord=x", "%70assword=x", "PASSWORD=x", "refresh%5Ftoken=x", "token=&a=1"]
)
async def test_disguised_secret_parameter_names_in_the_query_are_still_refused(
    harness: Harness, alice: Account, query: str
) -> None:
    response = await harness.client.post(
        f"{TOKEN}?{query}", data=password_form("alice", STRONG_PASSWORD)
    )
    assert_oauth_error(response, "invalid_request")
    assert STRONG_PASSWORD not in response.text


async def test_whole_password_grant_in_the_query_string_is_refused(
    harness: Harness, alice: Account
) -> None:
    response = await harness.client.post(
        TOKEN, params=password_form("alice", STRONG_PASSWORD), headers=FORM
    )
    assert_oauth_error(response, "invalid_request")
    assert STRONG_PASSWORD not in response.text
    assert "access_token" not in response.json()


# ------------------------------------------------------------------------------ scopes


@pytest.mark.parametrize(
    "scope", ["admin", "metrics:read", "items:read admin", "no-such-scope", "items:read *", "*"]
)
async def test_scope_the_user_does_not_hold_is_invalid_scope(
    harness: Harness, alice: Account, scope: str
) -> None:
    response = await harness.client.post(
        TOKEN, data=password_form("alice", STRONG_PASSWORD, scope=scope)
    )
    assert_oauth_error(response, "invalid_scope")
    assert "access_token" not in response.json()


async def test_narrower_scope_is_granted_exactly(harness: Harness, alice: Account) -> None:
    response = await harness.client.post(
        TOKEN, data=password_form("alice", STRONG_PASSWORD, scope="items:read")
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "items:read"
    token = response.json()["access_token"]
    create = await harness.client.post("/items", json={"name": "n"}, headers=bearer(token))
    assert create.status_code == 403
    assert 'error="insufficient_scope"' in create.headers["www-authenticate"]


@pytest.mark.parametrize("wider", ["items:read items:write", "items:write", "admin"])
async def test_refresh_with_a_wider_scope_is_invalid_scope(
    harness: Harness, alice: Account, wider: str
) -> None:
    narrow = await harness.client.post(
        TOKEN, data=password_form("alice", STRONG_PASSWORD, scope="items:read")
    )
    assert narrow.status_code == 200, narrow.text
    response = await harness.client.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrow.json()["refresh_token"],
            "scope": wider,
        },
    )
    assert_oauth_error(response, "invalid_scope")
    assert "access_token" not in response.json()


async def test_refresh_without_scope_keeps_the_narrowed_scope(
    harness: Harness, alice: Account
) -> None:
    narrow = await harness.client.post(
        TOKEN, data=password_form("alice", STRONG_PASSWORD, scope="items:read")
    )
    response = await harness.client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": narrow.json()["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "items:read"


# ------------------------------------------------------------------------------ smuggling


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=password&grant_type=refresh_token&username=alice&password={pw}",
        "grant_type=password&username=alice&username=mallory&password={pw}",
        "grant_type=password&username=alice&password=wrong&password={pw}",
        "grant_type=password&username=alice&password={pw}&scope=items:read&scope=admin",
        "grant_type=password&username=alice&password={pw}&password={pw}",
    ],
    ids=["grant_type", "username", "password", "scope", "same-value-twice"],
)
async def test_duplicated_parameters_are_invalid_request(
    harness: Harness, alice: Account, body: str
) -> None:
    content = body.format(pw=STRONG_PASSWORD.replace(" ", "+"))
    response = await harness.client.post(TOKEN, content=content, headers=FORM)
    assert_oauth_error(response, "invalid_request")
    assert "access_token" not in response.json()


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        (
            "application/json",
            b'{"grant_type":"password","username":"alice","password":"PW"}',
        ),
        ("text/plain", b"grant_type=password&username=alice&password=PW"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; "
            b'name="grant_type"\r\n\r\npassword\r\n--x--\r\n',
        ),
        (None, b"grant_type=password&username=alice&password=PW"),
    ],
    ids=["json", "text", "multipart", "no-content-type"],
)
async def test_body_that_is_not_a_form_is_invalid_request(
    harness: Harness, alice: Account, content_type: str | None, content: bytes
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    content = content.replace(b"PW", STRONG_PASSWORD.encode())
    response = await harness.client.post(TOKEN, content=content, headers=headers)
    assert_oauth_error(response, "invalid_request")
    assert STRONG_PASSWORD not in response.text


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"grant_type": "password"},
        {"grant_type": "password", "username": "alice"},
        {"grant_type": "password", "password": STRONG_PASSWORD},
        {"grant_type": "refresh_token"},
        {"username": "alice", "password": STRONG_PASSWORD},
        {"grant_type": "", "username": "alice", "password": STRONG_PASSWORD},
    ],
    ids=["empty", "no-user", "no-password", "no-username", "no-refresh", "no-grant", "empty-grant"],
)
async def test_missing_parameters_are_invalid_request(
    harness: Harness, alice: Account, form: dict[str, str]
) -> None:
    response = await harness.client.post(TOKEN, data=form, headers=FORM)
    assert_oauth_error(response, "invalid_request")


@pytest.mark.parametrize(
    "grant_type", ["client_credentials", "authorization_code", "implicit", "PASSWORD", "password "]
)
async def test_unknown_grant_type_is_unsupported_grant_type(
    harness: Harness, alice: Account, grant_type: str
) -> None:
    response = await harness.client.post(
        TOKEN, data={"grant_type": grant_type, "username": "alice", "password": STRONG_PASSWORD}
    )
    assert_oauth_error(response, "unsupported_grant_type")


# ------------------------------------------------------------------------------ caching


async def test_token_response_is_never_cached(harness: Harness, alice: Account) -> None:
    response = await harness.client.post(TOKEN, data=password_form("alice", STRONG_PASSWORD))
    assert response.status_code == 200
    assert_no_store(response)


@pytest.mark.parametrize(
    "form",
    [
        password_form("alice", WRONG_PASSWORD),
        password_form("alice", STRONG_PASSWORD, scope="admin"),
        {"grant_type": "refresh_token", "refresh_token": "nope"},
        {"grant_type": "nope"},
        {},
    ],
    ids=["invalid_grant", "invalid_scope", "bad-refresh", "unsupported", "invalid_request"],
)
async def test_token_errors_are_never_cached(
    harness: Harness, alice: Account, form: dict[str, str]
) -> None:
    response = await harness.client.post(TOKEN, data=form, headers=FORM)
    assert response.status_code == 400
    assert_no_store(response)


# ------------------------------------------------------------------------------ public clients


async def test_empty_basic_client_credentials_and_client_id_are_accepted_and_ignored(
    harness: Harness, alice: Account
) -> None:
    """SPEC §4.2: public clients; Swagger UI sends ``Basic base64(":")`` and a client_id."""
    basic = "Basic " + base64.b64encode(b":").decode()
    response = await harness.client.post(
        TOKEN,
        data=password_form("alice", STRONG_PASSWORD, client_id="swagger"),
        headers={"Authorization": basic},
    )
    assert response.status_code == 200, response.text


async def test_a_bearer_token_does_not_replace_the_password(
    harness: Harness, alice: Account
) -> None:
    """Authorization on the token endpoint is ignored: it never stands in for a grant."""
    response = await harness.client.post(
        TOKEN, data=password_form("alice", WRONG_PASSWORD), headers=alice.headers
    )
    assert_oauth_error(response, "invalid_grant")


async def test_password_never_appears_in_any_token_endpoint_answer(
    harness: Harness, alice: Account
) -> None:
    answers: list[httpx.Response] = [
        await harness.client.post(TOKEN, data=password_form("alice", WRONG_PASSWORD)),
        await harness.client.post(TOKEN, data=password_form("alice", WRONG_PASSWORD, scope="x")),
        await harness.client.post(TOKEN, data={"grant_type": "nope", "password": WRONG_PASSWORD}),
        await harness.client.post(TOKEN, data=password_form("alice", "x" * 9000 + WRONG_PASSWORD)),
    ]
    for response in answers:
        assert response.status_code == 400, response.text
        assert WRONG_PASSWORD not in response.text
