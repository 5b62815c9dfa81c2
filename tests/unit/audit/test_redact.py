"""Redaction (SPEC §6, §3): secrets are replaced by name and by shape, wherever they appear;
everything else is left exactly as it was."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest

from bastion.api_keys import key_prefix, new_api_key, new_key_id
from bastion.audit import redact
from bastion.audit.events import EventType
from bastion.audit.redact import (
    REDACTED,
    SECRET_QUERY_PARAMS,
    is_secret_name,
    redact_secrets,
    redact_text,
    redact_value,
)

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
def test_our_cookies_lose_their_values_in_a_raw_cookie_string(cookie: str) -> None:
    session, csrf = "Zs9vH3kQe0rUu5v3Yy0w2qC7bA8dF1gH", "9f86d081884c7d659a2feaa0c55ad015"
    raw = cookie.format(s=session, c=csrf)
    redacted = redact_text(raw)
    assert session not in redacted
    assert csrf not in redacted
    assert f"bastion_session={REDACTED}" in redacted
    for other in ("theme=dark", "lang=en"):
        if other in raw:
            assert other in redacted


@pytest.mark.parametrize("name", ["Cookie", "cookie", "Set-Cookie", "Authorization"])
def test_a_cookie_or_authorization_header_in_text_loses_its_whole_value(name: str) -> None:
    """Another app's ``sid`` is as secret as our session, and cannot be told from ``theme``."""
    for text in (f"{name}: sid=abc; other=x", f"{name}: sid=abc; other=x\r\nAccept: */*"):
        redacted = redact_text(text)
        assert redacted.startswith(f"{name}: {REDACTED}")
        for secret in ("sid", "abc", "other"):
            assert secret not in redacted
    assert redact_text(f"{name}: sid=abc\nAccept: */*") == f"{name}: {REDACTED}\nAccept: */*"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("password=hunter2", "hunter2", "password="),
        ("token: abc", "abc", "token: "),
        ("login with user_password=hunter2 refused", "hunter2", " refused"),
        ("--password=hunter2 --user=bob", "hunter2", "--user=bob"),
        ("access-token:zz9plural", "zz9plural", "access-token:"),
        ("jwt=opaque123", "opaque123", "jwt="),
        ("session_id=3f2a9c01", "3f2a9c01", "session_id="),
        ("X-CSRF-Token: 9f86d0818", "9f86d0818", "X-CSRF-Token: "),
        ("client_secret=c1!pw&state=xyz", "c1!pw", "&state=xyz"),
        ('{"password": "hunter two"}', "hunter two", '{"password": "'),
        ("{'api_key': 'k3y-v4lue', 'page': 2}", "k3y-v4lue", "'page': 2}"),
        ("login(password='it s me')", "it s me", "login(password='"),
        ("token=Bearer abc", "abc", "token="),
        (f"token_type=Bearer {JWT}", JWT, "token_type="),
        ("Proxy-Authorization: Basic YWxpY2U6aHVudGVy", "YWxpY2U6aHVudGVy", "Proxy-Authorization"),
        ("pepper=p3pp3r, next=1", "p3pp3r", ", next=1"),
    ],
)
def test_a_value_after_a_secret_name_in_free_text_is_redacted(
    text: str, secret: str, kept: str
) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "tokentoken" * 6_554,  # 64 KiB of a client's path: a name with no end
        "/x?" + "a_token" * 9_362,
        "eyJ" * 21_846,  # a JWT that never gets its dots
        "password:" * 7_282,
        "Bearer " * 9_362,
    ],
)
def test_redacting_hostile_text_takes_linear_time(text: str) -> None:
    """A client controls the request line uvicorn logs; redaction must not let 64 KiB of it
    stall the event loop (quadratic scanning took seconds)."""
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "GET /items/42 -> 200 in 3.1 ms",
        "user alice logged in from 203.0.113.7",
        "/items?page=2&sort=name&limit=50",
        "/search?page=2&per_page=50",
        "token = await verify(token)",  # code in a traceback: a name, not a name=value pair
        "password=&next=/",  # nothing to hide
        "token_type=refresh_token token_type_hint=access_token",
        "password_changed for alice; csrf_failed for bob",
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


SECRET_FIELD_NAMES = [
    "password",
    "Password",
    "current_password",
    "new_password",
    "user_password",
    "passwd",
    "authorization",
    "Authorization",
    "proxy-authorization",
    "cookie",
    "Cookie",
    "cookies",
    "set-cookie",
    "Set-Cookie",
    "x-api-key",
    "X-API-Key",
    "x-csrf-token",
    "X-CSRF-Token",
    "api_key",
    "api-key",
    "apikey",
    "token",
    "access_token",
    "access-token",
    "refresh_token",
    "id_token",
    "jwt",
    "client_secret",
    "csrf_token",
    "secret",
    "secret_key",
    "key",
    "session",
    "session_id",
    "bastion_session",
    "__Host-bastion_session",
    "__Host-bastion_csrf",
    "pepper",
    "credentials",
]


@pytest.mark.parametrize("name", SECRET_FIELD_NAMES)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain words", REDACTED),
        (b"raw header bytes", REDACTED),
        ({"nested": "dict", "count": 2}, {"nested": REDACTED, "count": 2}),
        (["a", "list", 3], [REDACTED, REDACTED, 3]),
        (12345, 12345),
        (True, True),
        (None, None),
    ],
)
def test_the_text_under_a_secret_name_is_redacted_and_its_numbers_kept(
    name: str, value: Any, expected: Any
) -> None:
    """Secrets are text; a count or a flag under a sensitive name (``sessions_ended: 1``)
    is what an operator needs and gives nobody a credential."""
    assert redact_value(name, value) == expected


def test_every_query_parameter_the_spec_names_is_a_secret_name() -> None:
    assert all(is_secret_name(name) for name in SECRET_QUERY_PARAMS)


def test_cookies_logged_as_a_mapping_are_redacted() -> None:
    event = {"event": "login", "cookies": {"bastion_session": "s3cr3t", "theme": "dark"}}
    out = redact_secrets(None, "info", event)
    assert out == {"event": "login", "cookies": {"bastion_session": REDACTED, "theme": REDACTED}}


def test_raw_asgi_headers_are_redacted_by_name_and_by_shape() -> None:
    headers = [
        (b"host", b"api.example.com"),
        (b"authorization", b"Digest opaque-and-short"),
        (b"cookie", b"sid=abc123; theme=dark"),
        (b"x-api-key", b"not-even-a-key"),
        (b"x-note", f"see Bearer {JWT}".encode()),
    ]
    out = redact_value("headers", headers)
    assert out == [
        ["host", "api.example.com"],
        ["authorization", REDACTED],
        ["cookie", REDACTED],
        ["x-api-key", REDACTED],
        ["x-note", f"see {REDACTED}"],
    ]
    assert redact_value("query_string", f"page=2&api_key={API_KEY}".encode()) == (
        f"page=2&api_key={REDACTED}"
    )


@pytest.mark.parametrize("event", [event.value for event in EventType])
def test_event_names_are_never_redacted(event: str) -> None:
    """``session_created`` or ``api_key_revoked`` is the value of ``event``, not a secret."""
    out = redact_secrets(None, "info", {"event": event, "type": event})
    assert out == {"event": event, "type": event}


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
        ("sessions_ended", 1),
        ("refresh_families_ended", 2),
        ("csrf_checked", True),
        ("event", "session_created"),
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


def test_a_log_line_is_redacted_every_time_its_values_come_back() -> None:
    """Clean values are remembered between lines; a secret never is, however often it comes."""
    key = new_api_key(new_key_id())
    line = {"event": "request", "route": "/reports", "note": f"key={key}", "status": 200}
    for _ in range(3):
        redacted = redact_secrets(None, "info", dict(line))
        assert key not in str(redacted)
        assert redacted["route"] == "/reports"


def test_remembering_clean_values_is_bounded_and_starts_again_when_full() -> None:
    key = new_api_key(new_key_id())
    for n in range(10_000):  # more distinct clean values than are remembered
        redact_secrets(None, "info", {"event": f"e{n}"})
    assert len(redact._CLEAN) <= redact._CLEAN_MAX
    assert key not in str(redact_secrets(None, "info", {"event": f"late {key}"}))
    assert redact_secrets(None, "info", {"event": "e1"}) == {"event": "e1"}


# ------------------------------------------------------------------------ the short path


def _texts_near_secrets(count: int) -> list[str]:
    """Strings built from the pieces the pattern looks for, and from what surrounds them."""
    import random

    pieces = [
        "bst_", "eyJ", "Bearer ", "basic ", "BEARER\t", "token", "api_key", "session",
        ":", "=", " ", ".", "-", "_", "abcdefgh", "0123456789", "XYZ", "/", "?", "&", "ſ", "é",
        API_KEY, JWT, BASIC, JWT[:20],
    ]  # fmt: skip
    chooser = random.Random(20261202)
    return ["".join(chooser.choices(pieces, k=chooser.randint(1, 8))) for _ in range(count)]


def test_the_short_path_skips_only_text_the_pattern_cannot_match() -> None:
    """``_cannot_match`` saves the scan on every log line; it must never skip a secret."""
    skipped = 0
    for text in _texts_near_secrets(20_000):
        if redact._cannot_match(text):
            skipped += 1
            assert redact._SECRET_TEXT.search(text) is None, text
    assert skipped > 500  # the short path is taken, not only refused


@pytest.mark.parametrize(
    ("text", "skipped"),
    [
        ("5f0c8e7d4b1a49e3a0c6d2b7e9f1a3c5", True),  # a generated request id
        ("/items/{item_id}", True),
        (API_KEY, False),
        (JWT, False),
        (f"Bearer {JWT}", False),
        ("baſic aGVsbG8gd29ybGQ=", False),  # not ASCII: left to the pattern
        ("127.0.0.1", True),
        ("::1", False),  # a colon: the pattern decides
    ],
)
def test_the_short_path_on_typical_values(text: str, skipped: bool) -> None:
    assert redact._cannot_match(text) is skipped
