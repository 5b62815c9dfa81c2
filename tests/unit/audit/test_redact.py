"""Redaction (SPEC §6, §3): secrets are replaced by name and by shape, wherever they appear;
everything else is left exactly as it was."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest

from bastion.api_keys import key_prefix, new_api_key, new_key_id
from bastion.audit.redact import REDACTED, redact_secrets, redact_text, redact_value

API_KEY = new_api_key(new_key_id())
JWT = jwt.encode(
    {"sub": "42", "exp": int(time.time()) + 900, "scope": "items:read"},
    "k" * 32,
    algorithm="HS256",
    headers={"typ": "at+jwt", "kid": "k1"},
)
BASIC = base64.b64encode(b"alice:hunter2hunter2").decode()


# ----------------------------------------------------------------------------- by shape


@pytest.mark.parametrize(
    "template",
    [
        "{}",
        "key={} was refused",
        "X-API-Key: {}",
        "keys: {0}, {0}",
        "<{}>",
        '{{"key": "{}"}}',
    ],
)
def test_api_keys_are_redacted_wherever_they_appear(template: str) -> None:
    text = template.format(API_KEY)
    redacted = redact_text(text)
    assert API_KEY not in redacted
    assert API_KEY.split("_")[2] not in redacted  # nor the secret part
    assert REDACTED in redacted


def test_jwts_are_redacted_wherever_they_appear() -> None:
    for text in (JWT, f"token {JWT} expired", f'{{"access_token": "{JWT}"}}', f"a={JWT};b=1"):
        redacted = redact_text(text)
        assert JWT not in redacted
        assert JWT.rsplit(".", 1)[1] not in redacted  # the signature
        assert JWT.split(".")[1] not in redacted  # the claims
        assert REDACTED in redacted


@pytest.mark.parametrize(
    "credential",
    [
        "Bearer abcdefgh12345678",
        "bearer abcdefgh12345678",
        "BEARER abcdefgh12345678",
        "Bearer  opaque-token_with.chars~+/=",
        f"Basic {BASIC}",
        f"basic {BASIC}",
        f"Bearer {JWT}",
    ],
)
def test_a_credential_after_its_scheme_is_redacted(credential: str) -> None:
    secret = credential.split()[-1]
    for text in (credential, f"Authorization: {credential}", f"sent '{credential}' twice"):
        redacted = redact_text(text)
        assert secret not in redacted
        assert REDACTED in redacted


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "password",
        "token",
        "refresh_token",
        "access_token",
        "client_secret",
        "API_KEY",
        "Password",
        "ToKeN",
    ],
)
def test_secret_query_parameters_lose_their_values(name: str) -> None:
    secret = "s3cr3t-value.with~chars"
    for text in (
        f"/items?{name}={secret}",
        f"/items?page=2&{name}={secret}",
        f"/items?{name}={secret}&page=2",
        f"/items?{name}={secret}#top",
        f"GET https://api.example.com/x?{name}={secret} HTTP/1.1",
    ):
        redacted = redact_text(text)
        assert secret not in redacted, text
        assert f"{name}={REDACTED}" in redacted
    # The other parameters are kept.
    assert "page=2" in redact_text(f"/items?{name}={secret}&page=2")
    assert redact_text(f"/items?{name}={secret}#top").endswith("#top")


def test_every_secret_query_parameter_in_one_url() -> None:
    url = (
        "/cb?password=v1p4ss&token=v2t0k&refresh_token=v3r3f&access_token=v4acc"
        "&api_key=v5k3y&client_secret=v6cl1&state=xyz"
    )
    redacted = redact_text(url)
    for secret in ("v1p4ss", "v2t0k", "v3r3f", "v4acc", "v5k3y", "v6cl1"):
        assert secret not in redacted
    assert redacted.endswith("&state=xyz")


@pytest.mark.parametrize(
    "cookie",
    [
        "bastion_session={s}; bastion_csrf={c}",
        "__Host-bastion_session={s}; __Host-bastion_csrf={c}",
        "theme=dark; bastion_session={s}; lang=en; __Host-bastion_csrf={c}",
    ],
)
def test_our_cookies_are_redacted_in_a_raw_cookie_header(cookie: str) -> None:
    session, csrf = "Zs9vH3kQe0rUu5v3Yy0w2qC7bA8dF1gH", "9f86d081884c7d659a2feaa0c55ad015"
    header = "Cookie: " + cookie.format(s=session, c=csrf)
    redacted = redact_text(header)
    assert session not in redacted
    assert csrf not in redacted
    for other in ("theme=dark", "lang=en"):
        if other in header:
            assert other in redacted


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "GET /items/42 -> 200 in 3.1 ms",
        "user alice logged in from 203.0.113.7",
        "/items?page=2&sort=name&limit=50",
        "/search?my_token=abc&tokens=3&passwords_checked=2",
        "550e8400-e29b-41d4-a716-446655440000",
        key_prefix("AbCdEfGhIjKl"),  # a key's public prefix, as lists show it
        "bst_short_and_not_a_key",
        "eyJ alone is not a token",
        "Bearer",
        "the Bearer scheme",
        "theme=dark; lang=en",
        "urn:bastion:problem:invalid-token",
        "login_failed token_refreshed api_key_created",
    ],
)
def test_text_without_secrets_is_untouched(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_is_idempotent() -> None:
    text = f"Bearer {JWT} /x?api_key={API_KEY}&password=p Cookie: bastion_session=abc"
    once = redact_text(text)
    assert redact_text(once) == once


# ----------------------------------------------------------------------------- by name


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "Password",
        "current_password",
        "new_password",
        "authorization",
        "Authorization",
        "cookie",
        "Cookie",
        "set-cookie",
        "Set-Cookie",
        "x-api-key",
        "X-API-Key",
        "x-csrf-token",
        "X-CSRF-Token",
        "api_key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "csrf_token",
        "secret",
        "secret_key",
        "session",
    ],
)
@pytest.mark.parametrize("value", ["plain words", 12345, {"nested": "dict"}, ["a", "list"], None])
def test_secret_names_are_redacted_whatever_they_hold(name: str, value: Any) -> None:
    assert redact_value(name, value) == REDACTED


def test_nested_structures_are_redacted_all_the_way_down() -> None:
    value = {
        "request": {
            "headers": {
                "Authorization": f"Bearer {JWT}",
                "Cookie": "bastion_session=abc",
                "Accept": "application/json",
                "X-Request-ID": "req-1",
            },
            "query": {"page": 2, "api_key": API_KEY},
        },
        "attempts": [
            {"username": "alice", "password": "hunter2hunter2"},
            {"username": "bob", "refresh_token": "opaque-refresh"},
            f"free text with Bearer {JWT}",
            ("tuple", {"x-api-key": API_KEY}),
        ],
        "count": 3,
        "ok": True,
        "nothing": None,
    }
    redacted = redact_value(None, value)
    assert redacted == {
        "request": {
            "headers": {
                "Authorization": REDACTED,
                "Cookie": REDACTED,
                "Accept": "application/json",
                "X-Request-ID": "req-1",
            },
            "query": {"page": 2, "api_key": REDACTED},
        },
        "attempts": [
            {"username": "alice", "password": REDACTED},
            {"username": "bob", "refresh_token": REDACTED},
            f"free text with {REDACTED}",
            ["tuple", {"x-api-key": REDACTED}],
        ],
        "count": 3,
        "ok": True,
        "nothing": None,
    }
    text = repr(redacted)
    for secret in (JWT, API_KEY, "hunter2hunter2", "opaque-refresh", "bastion_session=abc"):
        assert secret not in text


def test_secrets_by_shape_are_caught_under_innocent_names() -> None:
    assert redact_value("note", f"used {API_KEY}") == f"used {REDACTED}"
    assert redact_value("path", "/items?password=x") == f"/items?password={REDACTED}"
    assert redact_value(None, [f"Bearer {JWT}"]) == [REDACTED]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("username", "alice"),
        ("token_type", "refresh_token"),
        ("token_type_hint", "access_token"),
        ("key_id", "AbCdEfGhIjKl"),
        ("prefix", key_prefix("AbCdEfGhIjKl")),
        ("sid", "family-123"),
        ("jti", "3f2a9c"),
        ("scopes", ["items:read", "items:write"]),
        ("roles_before", ["user"]),
        ("via", "session"),
        ("reason", "bad_credentials"),
        ("status", 401),
        ("duration_ms", 1.5),
        ("disabled", False),
        ("method", "POST"),
    ],
)
def test_values_that_are_not_secrets_are_untouched(name: str, value: Any) -> None:
    assert redact_value(name, value) == value
    assert redact_value(None, {name: value}) == {name: value}


# ----------------------------------------------------------------------------- the processor


def test_the_structlog_processor_redacts_every_field() -> None:
    event = {
        "event": f"request with Bearer {JWT}",
        "password": "hunter2hunter2",
        "headers": {"authorization": f"Basic {BASIC}", "user-agent": "curl/8"},
        "path": f"/download?api_key={API_KEY}",
        "status": 200,
        "level": "info",
    }
    out = redact_secrets(None, "info", dict(event))
    assert out == {
        "event": f"request with {REDACTED}",
        "password": REDACTED,
        "headers": {"authorization": REDACTED, "user-agent": "curl/8"},
        "path": f"/download?api_key={REDACTED}",
        "status": 200,
        "level": "info",
    }
