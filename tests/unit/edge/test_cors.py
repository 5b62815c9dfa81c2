"""CORS with exact origins only (SPEC §2.1, §5 ``BASTION_CORS_ORIGINS``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bastion.edge.cors import CorsPolicy, canonical_origin, is_preflight
from bastion.settings import BastionSettings
from tests.unit.edge.asgi_apps import Recorder, assert_edge_headers, call, edge

APP = "https://app.example.com"
POLICY = CorsPolicy([APP, "http://localhost:5173"])
CORS: dict[str, Any] = {"cors_origins": [APP]}
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


# ----------------------------------------------------------------------------- origins


@pytest.mark.parametrize(
    ("origin", "canonical"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM/", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_origins_are_canonicalised_as_browsers_send_them(origin: str, canonical: str) -> None:
    assert canonical_origin(origin) == canonical


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "app.example.com",
        "https://*.example.com",
        "https://app.example.com/path",
        "https://app.example.com?x=1",
        "https://user@app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app example.com",
        "https://app.example.com:99999",
    ],
)
def test_anything_but_one_exact_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        canonical_origin(origin)


def test_settings_refuse_a_malformed_origin() -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        BastionSettings(cors_origins=["https://*.example.com"])


def test_settings_refuse_any_origin_with_credentials() -> None:
    with pytest.raises(ValidationError, match="BASTION_CORS_ALLOW_CREDENTIALS"):
        BastionSettings(cors_origins=["*"], cors_allow_credentials=True)


def test_the_policy_itself_refuses_any_origin_with_credentials() -> None:
    with pytest.raises(ValueError, match="exact origins"):
        CorsPolicy(["*"], allow_credentials=True)


def test_production_refuses_to_start_with_any_origin() -> None:
    with pytest.raises(ValueError, match="BASTION_CORS_ORIGINS"):
        edge(Recorder(), env="production", allowed_hosts=["api.example.com"], cors_origins=["*"])


def test_any_origin_stays_a_production_finding() -> None:
    findings = BastionSettings(cors_origins=["*"]).production_findings()

    assert any("BASTION_CORS_ORIGINS" in f for f in findings)


# ----------------------------------------------------------------------------- grants


def test_a_listed_origin_is_granted_as_itself() -> None:
    assert POLICY.granted_origin(b"https://app.example.com") == b"https://app.example.com"
    assert POLICY.granted_origin(b"http://localhost:5173") == b"http://localhost:5173"


@pytest.mark.parametrize(
    "origin",
    [
        b"https://evil.example",
        b"null",
        b"http://app.example.com",
        b"https://app.example.com:8443",
        b"https://app.example.com.evil.example",
        b"https://evil-app.example.com",
        b"https://sub.app.example.com",
        b"https://app.example.co",
        b"https://app.example.com/",
        b"http://localhost:5174",
        b"",
    ],
)
def test_every_other_origin_gets_no_grant(origin: bytes) -> None:
    assert POLICY.granted_origin(origin) is None


def test_no_origin_header_gets_no_grant() -> None:
    assert POLICY.granted_origin(None) is None


def test_cors_is_off_without_origins() -> None:
    policy = CorsPolicy([])

    assert not policy.is_enabled
    assert policy.granted_origin(b"https://app.example.com") is None


def test_a_star_grants_any_origin_as_a_star() -> None:
    assert CorsPolicy(["*"]).granted_origin(b"https://anyone.example") == b"*"


def test_credentials_are_granted_only_when_configured() -> None:
    without = dict(POLICY.response_headers(b"https://app.example.com"))
    with_credentials = dict(
        CorsPolicy([APP], allow_credentials=True).response_headers(b"https://app.example.com")
    )

    assert b"access-control-allow-credentials" not in without
    assert with_credentials[b"access-control-allow-credentials"] == b"true"


def test_a_preflight_is_an_options_request_asking_for_a_method() -> None:
    assert is_preflight("OPTIONS", [b"POST"])
    assert not is_preflight("OPTIONS", [])
    assert not is_preflight("POST", [b"POST"])


# ----------------------------------------------------------------------------- in the edge


async def test_a_preflight_from_a_listed_origin_is_answered_by_the_edge() -> None:
    app = Recorder()

    response = await call(edge(app, **CORS), "OPTIONS", headers=PREFLIGHT)

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    allowed_methods = response.headers["access-control-allow-methods"].split(", ")
    allowed_headers = response.headers["access-control-allow-headers"].lower().split(", ")
    assert "POST" in allowed_methods
    assert {"authorization", "content-type", "x-api-key", "x-csrf-token"} <= set(allowed_headers)
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers
    assert_edge_headers(response)
    assert not app.was_called


async def test_a_preflight_from_another_origin_goes_to_the_app_ungranted() -> None:
    app = Recorder(status=405)

    response = await call(
        edge(app, **CORS), "OPTIONS", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )

    assert response.status_code == 405
    assert app.was_called
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert response.headers["vary"] == "Origin"


async def test_a_request_from_a_listed_origin_gets_the_grant_on_the_apps_response() -> None:
    response = await call(
        edge(Recorder(), cors_allow_credentials=True, **CORS), headers={"Origin": APP}
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    assert response.headers["vary"] == "Origin"


async def test_a_request_from_another_origin_gets_no_grant_but_still_varies() -> None:
    response = await call(edge(Recorder(), **CORS), headers={"Origin": "https://evil.example"})

    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert response.headers["vary"] == "Origin"


async def test_with_cors_off_nothing_is_granted_and_preflights_reach_the_app() -> None:
    app = Recorder(status=405)

    response = await call(edge(app), "OPTIONS", headers=PREFLIGHT)

    assert response.status_code == 405
    assert app.was_called
    assert "access-control-allow-origin" not in response.headers
    assert "vary" not in response.headers


async def test_origin_is_added_to_the_apps_own_vary() -> None:
    app = Recorder(headers=[(b"vary", b"Accept-Encoding")])

    response = await call(edge(app, **CORS), headers={"Origin": APP})

    assert response.headers.get_list("vary") == ["Accept-Encoding", "Origin"]


async def test_a_vary_that_already_names_origin_is_not_repeated() -> None:
    app = Recorder(headers=[(b"vary", b"Accept, origin")])

    response = await call(edge(app, **CORS), headers={"Origin": APP})

    assert response.headers.get_list("vary") == ["Accept, origin"]


async def test_a_grant_the_app_made_itself_is_not_duplicated() -> None:
    app = Recorder(headers=[(b"access-control-allow-origin", APP.encode())])

    response = await call(edge(app, **CORS), headers={"Origin": APP})

    assert response.headers.get_list("access-control-allow-origin") == [APP]
