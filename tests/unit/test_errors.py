"""The error tree and its one rendering as RFC 9457 problem+json (SPEC §3)."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from bastion.errors import (
    QUOTA_EXCEEDED,
    AmbiguousCredentials,
    AuthenticationError,
    BadRequest,
    BastionError,
    Conflict,
    CSRFFailed,
    InvalidCredentials,
    InvalidToken,
    MissingRole,
    NotFound,
    OAuthError,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    install_error_handlers,
    internal_error_response,
    render_bastion_error,
    render_oauth_error,
)


def body_of(response: Response) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(response.body)
    return parsed


# ----------------------------------------------------------------------------- problem+json


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest(), 400),
        (AmbiguousCredentials(), 400),
        (AuthenticationError(), 401),
        (InvalidToken(), 401),
        (InvalidCredentials(), 401),
        (PermissionDenied(), 403),
        (MissingRole(), 403),
        (CSRFFailed(), 403),
        (NotFound(), 404),
        (Conflict(), 409),
        (PayloadTooLarge(), 413),
        (UnsupportedMediaType(), 415),
        (ValidationFailed([]), 422),
        (RateLimited(5), 429),
        (ServiceUnavailable(), 503),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BastionError) else str(v),
)
def test_every_bastion_error_renders_as_problem_json(error: BastionError, status: int) -> None:
    response = render_bastion_error(error)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = body_of(response)
    assert body["status"] == status
    assert body["type"] == error.problem_type
    assert body["title"] == error.title
    assert isinstance(body["detail"], str)
    assert body["detail"].endswith(".")


def test_a_custom_detail_replaces_the_default_sentence() -> None:
    body = body_of(render_bastion_error(NotFound("No such item.")))

    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No such item.",
    }


def test_the_internal_error_body_says_nothing_about_the_failure() -> None:
    response = internal_error_response()

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert body_of(response) == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The server could not complete the request.",
    }


# ----------------------------------------------------------------------------- 401 challenges


def test_a_401_without_credentials_challenges_with_exactly_the_bearer_realm() -> None:
    response = render_bastion_error(AuthenticationError())

    assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'
    assert response.headers["cache-control"] == "no-store"


def test_a_bad_bearer_token_gets_the_invalid_token_challenge_with_a_description() -> None:
    response = render_bastion_error(AuthenticationError("The token expired.", token_error=True))

    assert response.headers["www-authenticate"] == (
        'Bearer realm="bastion", error="invalid_token", error_description="The token expired."'
    )


def test_invalid_token_is_a_token_error_by_construction() -> None:
    challenge = render_bastion_error(InvalidToken()).headers["www-authenticate"]

    assert challenge.startswith('Bearer realm="bastion", error="invalid_token", ')
    assert 'error_description="The access token is invalid or has expired."' in challenge


def test_routes_accepting_api_keys_add_an_api_key_challenge() -> None:
    challenge = render_bastion_error(AuthenticationError(schemes=("bearer", "api_key"))).headers[
        "www-authenticate"
    ]

    assert challenge == 'Bearer realm="bastion", ApiKey realm="bastion"'


def test_an_api_key_only_route_still_names_the_bearer_realm_first() -> None:
    """SPEC §3: the ``ApiKey`` challenge comes "as well", beside ``Bearer``."""
    challenge = render_bastion_error(AuthenticationError(schemes=("api_key",))).headers[
        "www-authenticate"
    ]

    assert challenge == 'Bearer realm="bastion", ApiKey realm="bastion"'


def test_an_invalid_token_on_an_api_key_route_keeps_both_challenges() -> None:
    challenge = render_bastion_error(InvalidToken(schemes=("bearer", "api_key"))).headers[
        "www-authenticate"
    ]

    assert challenge.startswith('Bearer realm="bastion", error="invalid_token"')
    assert challenge.endswith(', ApiKey realm="bastion"')


def test_no_scheme_at_all_still_challenges_with_bearer() -> None:
    challenge = render_bastion_error(AuthenticationError(schemes=())).headers["www-authenticate"]

    assert challenge == 'Bearer realm="bastion"'


@pytest.mark.parametrize(
    "detail",
    [
        'bad "token", error="none"',
        "back\\slash\\",
        "line\r\nSet-Cookie: x=1",
        "tab\there",
        "naïve—ünïcode",
    ],
)
def test_the_error_description_cannot_break_out_of_its_quoted_string(detail: str) -> None:
    challenge = render_bastion_error(InvalidToken(detail)).headers["www-authenticate"]

    description = challenge.split('error_description="', 1)[1]
    assert description.endswith('"')
    inner = description[:-1]
    assert '"' not in inner
    assert "\\" not in inner
    assert not {"\r", "\n", "\t"} & set(inner)
    assert inner.isascii()


def test_quoting_keeps_the_printable_ascii_of_the_description() -> None:
    challenge = render_bastion_error(InvalidToken('The "token" is bad.')).headers[
        "www-authenticate"
    ]

    assert challenge.endswith('error_description="The token is bad."')


def test_extra_headers_are_kept_alongside_the_challenge() -> None:
    response = render_bastion_error(AuthenticationError(headers={"X-Extra": "1"}))

    assert response.headers["x-extra"] == "1"
    assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'


# ----------------------------------------------------------------------------- 403/422/429/503


def test_a_403_is_never_cached_and_has_no_bearer_challenge_by_default() -> None:
    response = render_bastion_error(PermissionDenied())

    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in response.headers


def test_validation_errors_report_loc_msg_type_and_never_the_input() -> None:
    error = ValidationFailed(
        [
            {
                "loc": ("body", "password"),
                "msg": "String should have at least 12 characters",
                "type": "string_too_short",
                "input": "hunter2-secret",
                "ctx": {"min_length": 12},
                "url": "https://errors.pydantic.dev/",
            }
        ]
    )

    body = body_of(render_bastion_error(error))

    assert body["errors"] == [
        {
            "loc": ["body", "password"],
            "msg": "String should have at least 12 characters",
            "type": "string_too_short",
        }
    ]
    assert "hunter2-secret" not in json.dumps(body)


def test_rate_limited_is_a_429_with_retry_after_and_the_iana_quota_type() -> None:
    response = render_bastion_error(RateLimited(42))

    assert response.status_code == 429
    assert response.headers["retry-after"] == "42"
    assert body_of(response)["type"] == QUOTA_EXCEEDED
    assert QUOTA_EXCEEDED == "https://iana.org/assignments/http-problem-types#quota-exceeded"


@pytest.mark.parametrize("retry_after", [0, -5])
def test_retry_after_is_at_least_one_second(retry_after: int) -> None:
    assert render_bastion_error(RateLimited(retry_after)).headers["retry-after"] == "1"
    assert (
        render_bastion_error(ServiceUnavailable(retry_after=retry_after)).headers["retry-after"]
        == "1"
    )


def test_service_unavailable_carries_retry_after_and_its_checks() -> None:
    error = ServiceUnavailable(retry_after=3, checks={"database": "ok", "redis": "down"})

    response = render_bastion_error(error)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert body_of(response)["checks"] == {"database": "ok", "redis": "down"}


def test_service_unavailable_without_checks_has_no_checks_member() -> None:
    assert "checks" not in body_of(render_bastion_error(ServiceUnavailable()))


# ----------------------------------------------------------------------------- OAuth errors


def test_oauth_errors_use_the_rfc_6749_body_and_are_never_cached() -> None:
    response = render_oauth_error(OAuthError("invalid_grant", "The refresh token is invalid."))

    assert response.status_code == 400
    assert body_of(response) == {
        "error": "invalid_grant",
        "error_description": "The refresh token is invalid.",
    }
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"


# ----------------------------------------------------------------------------- handlers


class Signup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str = Field(min_length=12)


def app_with_handlers() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"username": body.username}

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("That name is taken.")

    @app.post("/token")
    async def token() -> None:
        raise OAuthError("invalid_request", "The token is missing.")

    return app


async def request(method: str, path: str, body: object = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_with_handlers())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, json=body)


async def test_a_request_validation_error_becomes_a_422_problem_without_the_input() -> None:
    response = await request(
        "POST", "/signup", body={"username": "alice", "password": "short-pw", "is_admin": True}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:bastion:problem:validation-failed"
    locs = [tuple(e["loc"]) for e in body["errors"]]
    assert ("body", "password") in locs
    assert ("body", "is_admin") in locs
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])
    assert "short-pw" not in response.text


async def test_a_raised_bastion_error_is_rendered_by_the_installed_handler() -> None:
    response = await request("GET", "/conflict")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "That name is taken."


async def test_a_raised_oauth_error_is_rendered_with_the_oauth_body() -> None:
    response = await request("POST", "/token")

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The token is missing.",
    }


async def test_framework_404_and_405_become_problems_with_our_own_sentence() -> None:
    not_found = await request("GET", "/nowhere")
    not_allowed = await request("DELETE", "/conflict")

    assert not_found.status_code == 404
    assert not_found.headers["content-type"] == "application/problem+json"
    assert not_found.json()["detail"] == "The requested resource was not found."
    assert not_allowed.status_code == 405
    assert not_allowed.headers["content-type"] == "application/problem+json"
    assert "allow" in not_allowed.headers
