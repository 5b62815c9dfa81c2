"""Whatever a client sends, the answer is never a 500 and always a structured error (SPEC §3):
problem+json, or the OAuth2 error body on ``/auth/token`` and ``/auth/revoke``.

Plain parametrized cases plus seeded random bytes (no property-testing dependency), so that a
failure names its input and reproduces.
"""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

import httpx
import pytest

from tests.conftest import Harness
from tests.security.conftest import Account
from tests.security.helpers import (
    PROBLEM_JSON,
    assert_invalid_token,
    assert_problem,
    is_problem_or_oauth,
)

OAUTH_ROUTES = frozenset({"/auth/token", "/auth/revoke"})
BODY_ROUTES = [
    ("POST", "/items"),
    ("PATCH", "/items/1"),
    ("POST", "/auth/register"),
    ("POST", "/auth/password"),
    ("POST", "/auth/token"),
    ("POST", "/auth/revoke"),
]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----x",
    "text/plain",
    "application/octet-stream",
    None,
]


def random_bodies(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    bodies = [rng.randbytes(rng.choice([1, 7, 64, 512, 4096])) for _ in range(count)]
    return [*bodies, b"\x00" * 32, b"\xff\xfe" * 100, "é€𝄞".encode("utf-16")]


async def send_json(
    harness: Harness, method: str, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    """JSON with ASCII escapes, so that a lone surrogate travels as ``\\ud800`` (what any
    client may send) instead of failing in the client's own UTF-8 encoder."""
    return await harness.client.request(
        method,
        path,
        content=json.dumps(body).encode(),
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def assert_structured_error(response: httpx.Response, path: str) -> None:
    """Never a 500; an error is problem+json, or OAuth JSON where RFC 6749 demands it."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code < 400:
        return
    if path in OAUTH_ROUTES:
        assert is_problem_or_oauth(response), (response.status_code, response.text)
    else:
        assert_problem(response, response.status_code)


# ------------------------------------------------------------------------------ bodies


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_random_bytes_body_never_gives_a_500(
    harness: Harness, alice: Account, method: str, path: str, content_type: str | None
) -> None:
    headers = dict(alice.headers)
    if content_type:
        headers["Content-Type"] = content_type
    seed = zlib.crc32(f"{method} {path} {content_type}".encode())
    for body in random_bodies(seed, 4):
        response = await harness.client.request(method, path, content=body, headers=headers)
        assert_structured_error(response, path)


INVALID_JSON = [
    b"{",
    b'{"name":',
    b'{"name": "x",}',
    b"{'name': 'x'}",
    b"[]",
    b"null",
    b'"just a string"',
    b"1",
    b"true",
    b'{"name": NaN}',
    b'{"name": Infinity}',
    b'{"name": 1e999999}',
    b'{"name": ' + b"9" * 5000 + b"}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xef\xbb\xbf" + b'{"name": "bom"}',
    b'{"name": "\\ud800"}',
    b'{"name": "\\u0000"}',
    b'{"name": "x"}' + b"garbage",
    b"\x00\x00\x00{",
]


@pytest.mark.parametrize("body", INVALID_JSON, ids=[str(i) for i in range(len(INVALID_JSON))])
async def test_invalid_or_hostile_json_never_gives_a_500(
    harness: Harness, alice: Account, body: bytes
) -> None:
    headers = {**alice.headers, "Content-Type": "application/json"}
    for path in ("/items", "/auth/register"):
        response = await harness.client.post(path, content=body, headers=headers)
        assert_structured_error(response, path)


@pytest.mark.parametrize(
    "name",
    [
        "nul \u0000 byte",
        "lone surrogate \ud800",
        "reversed \u202e text",
        "emoji 🛡️🔐",
        "zero\u200bwidth",
        "\ufeffbom",
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "${jndi:ldap://x}",
        "a" * 200,
    ],
    ids=["nul", "surrogate", "rtl", "emoji", "zwsp", "bom", "sql", "html", "jndi", "max-length"],
)
async def test_unusual_item_names_never_give_a_500(
    harness: Harness, alice: Account, name: str
) -> None:
    """JSON may carry a NUL or a lone surrogate escape; storage must not choke on either."""
    created = await send_json(
        harness, "POST", "/items", {"name": name, "description": name}, alice.headers
    )
    assert_structured_error(created, "/items")
    if created.status_code == 201:
        item_id = created.json()["id"]
        read = await harness.client.get(f"/items/{item_id}", headers=alice.headers)
        assert read.status_code == 200
        assert read.json()["name"] == name
        patched = await send_json(
            harness, "PATCH", f"/items/{item_id}", {"description": name}, alice.headers
        )
        assert_structured_error(patched, "/items")


@pytest.mark.parametrize(
    "password",
    ["surrogate \ud800 in a long password", "nul \u0000 inside a long password"],
    ids=["surrogate", "nul"],
)
async def test_unusual_passwords_on_register_never_give_a_500(
    harness: Harness, password: str
) -> None:
    response = await send_json(
        harness, "POST", "/auth/register", {"username": "newcomer", "password": password}
    )
    assert_structured_error(response, "/auth/register")


async def test_unusual_password_on_the_token_endpoint_never_gives_a_500(
    harness: Harness, alice: Account
) -> None:
    for password in ("\x00" * 20, "%ff%fe", "é" * 300, "\U0001f512" * 100):
        response = await harness.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "alice", "password": password},
        )
        assert_structured_error(response, "/auth/token")
        assert response.status_code == 400


@pytest.mark.parametrize(
    "username",
    ["a\x00lice", "\x00" * 8, "alice\x00", "\x1b[31malice", "a" * 5000, "é" * 70, "\u202ealice"],
    ids=["nul-inside", "nuls", "nul-suffix", "ansi", "long", "latin1-long", "rtl"],
)
async def test_unusual_username_on_the_token_endpoint_is_invalid_grant_never_a_500(
    harness: Harness, alice: Account, username: str
) -> None:
    """The attempted name may end up in an audit event; storing it must not fail."""
    response = await harness.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": "wrong password!"},
    )
    assert_structured_error(response, "/auth/token")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "name",
    ["nul \u0000 key", "surrogate \ud800 key", "\u202e rtl"],
    ids=["nul", "surrogate", "rtl"],
)
async def test_unusual_api_key_names_never_give_a_500(
    harness: Harness, alice: Account, name: str
) -> None:
    response = await send_json(harness, "POST", "/auth/keys", {"name": name}, alice.headers)
    assert_structured_error(response, "/auth/keys")


# ------------------------------------------------------------------------------ headers


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Garbage": "a" * 100_000},
        {"Cookie": "session=" + "b" * 100_000},
        {"User-Agent": "\x7f" * 1000},
        {f"X-H{n}": "v" * 100 for n in range(500)},
        {"X-Request-ID": b"\xff" * 200},
        {"Accept": "application/xml;q=0.9, */*;q=0.8" * 100},
        {"Content-Type": "application/json; charset=" + "x" * 5000},
    ],
    ids=["long-value", "long-cookie", "del-chars", "many-headers", "latin1-id", "accept", "ctype"],
)
async def test_huge_or_odd_headers_never_give_a_500(
    harness: Harness, alice: Account, headers: dict[str, str]
) -> None:
    for path in ("/public", "/secure-data", "/items"):
        response = await harness.client.get(path, headers={**headers, **alice.headers})
        assert_structured_error(response, path)


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer \xff\xfe\xfd",
        b"Bearer eyJ\x80\x81.eyJ\x82.sig",
        b"Bearer \xc3\x28",
        b"Bearer " + b"\xe2\x82" * 50,
        b"Bearer \x00\x00",
        b"Bearer a\tb",
    ],
    ids=["ff-fe", "jwt-like", "bad-utf8", "truncated-utf8", "nul", "tab"],
)
async def test_non_utf8_bearer_token_is_an_invalid_token(
    harness: Harness, authorization: bytes
) -> None:
    response = await harness.client.get("/secure-data", headers={"Authorization": authorization})
    assert_invalid_token(response)


@pytest.mark.parametrize(
    "authorization", [b"\xff\xfe token", b"B\xe9arer token", b"\x00Bearer x"], ids=str
)
async def test_non_utf8_authorization_scheme_counts_as_missing_credentials(
    harness: Harness, authorization: bytes
) -> None:
    response = await harness.client.get("/secure-data", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer realm="bastion"')


# ------------------------------------------------------------------------------ URLs


async def raw_asgi_request(
    harness: Harness,
    method: str,
    raw_path: bytes,
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request straight into the app, for bytes an HTTP client library refuses to send
    (a raw ``0xff`` in the target) but a socket can carry."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    received = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await harness.app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    response_headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]
    }
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], response_headers, content


def raw_response(status: int, headers: dict[str, str], content: bytes) -> httpx.Response:
    return httpx.Response(status, headers=headers, content=content)


PERCENT_QUERIES = ["limit=%ff", "%ff%fe=1", "offset=%00", "limit=1&limit=%c3%28", "pass%77ord=%ff"]
RAW_QUERIES = [b"limit=\xff\xfe", b"\x80", b"limit=1\x00", b"password=\xff"]


@pytest.mark.parametrize("path", ["/items", "/secure-data", "/auth/token", "/auth/revoke"])
async def test_percent_encoded_non_utf8_query_never_gives_a_500(
    harness: Harness, alice: Account, path: str
) -> None:
    method = "POST" if path in OAUTH_ROUTES else "GET"
    data = {"token": "garbage"} if path == "/auth/revoke" else {"grant_type": "x"}
    kwargs: dict[str, Any] = {"data": data} if method == "POST" else {}
    for query in PERCENT_QUERIES:
        response = await harness.client.request(
            method, f"{path}?{query}", headers=alice.headers, **kwargs
        )
        assert response.status_code < 500, (query, response.text)
        assert_structured_error(response, path)


@pytest.mark.parametrize("path", ["/items", "/secure-data", "/auth/token", "/auth/revoke"])
async def test_raw_non_utf8_query_bytes_never_give_a_500(
    harness: Harness, alice: Account, path: str
) -> None:
    method = "POST" if path in OAUTH_ROUTES else "GET"
    headers = [(b"authorization", alice.headers["Authorization"].encode())]
    body = b""
    if method == "POST":
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        body = b"token=garbage" if path == "/auth/revoke" else b"grant_type=x"
    for query in RAW_QUERIES:
        status, response_headers, content = await raw_asgi_request(
            harness, method, path.encode(), query, headers, body
        )
        assert status < 500, (query, content)
        assert_structured_error(raw_response(status, response_headers, content), path)


@pytest.mark.parametrize(
    "raw_path", [b"/items/\xff", b"/items/\x80\x81", b"/\xff\xfe", b"/items/1\x00"], ids=str
)
async def test_raw_non_utf8_path_bytes_never_give_a_500(
    harness: Harness, alice: Account, raw_path: bytes
) -> None:
    headers = [(b"authorization", alice.headers["Authorization"].encode())]
    status, response_headers, content = await raw_asgi_request(
        harness, "GET", raw_path, b"", headers
    )
    response = raw_response(status, response_headers, content)
    assert_structured_error(response, "/items")
    assert status in (404, 422), (status, content)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1e2"},
        {"limit": "99999999999999999999999"},
        {"offset": "-1"},
        {"offset": str(2**63)},
        {"offset": str(2**62)},
        {"offset": "NaN"},
        {"limit": "\u0661"},
    ],
    ids=lambda p: "-".join(f"{k}={v[:12]}" for k, v in p.items()),
)
async def test_out_of_range_paging_is_422_or_empty_never_a_500(
    harness: Harness, alice: Account, params: dict[str, str]
) -> None:
    response = await harness.client.get("/items", params=params, headers=alice.headers)
    assert_structured_error(response, "/items")
    if response.status_code >= 400:
        assert response.status_code == 422


NUMERIC_IDS = ["-1", "0", "99999999999999999999", str(2**31), str(2**63), str(2**64 + 1)]
OTHER_IDS = [
    "abc",
    "1.5",
    "1e3",
    "0x10",
    "%00",
    "%ff",
    "\u0661",
    "\uff11",
    "%20%31",
    "null",
    "1;DROP TABLE items",
    "1%27%20OR%20%271%27=%271",
    "..%2f..%2fetc%2fpasswd",
    "🛡",
    "1" * 5000,
]


@pytest.mark.parametrize("item_id", NUMERIC_IDS)
async def test_numeric_id_out_of_range_is_the_same_404_as_a_missing_item(
    harness: Harness, alice: Account, item_id: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await harness.client.request(
            method, f"/items/{item_id}", headers=alice.headers, **kwargs
        )
        missing = await harness.client.request(
            method, "/items/123456", headers=alice.headers, **kwargs
        )
        assert response.status_code == 404, (method, response.status_code, response.text)
        assert_problem(response, 404)
        assert response.content == missing.content, method


@pytest.mark.parametrize(
    "item_id", OTHER_IDS, ids=lambda s: s.encode("unicode_escape")[:24].decode()
)
async def test_non_numeric_id_is_a_problem_never_a_500(
    harness: Harness, alice: Account, item_id: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await harness.client.request(
            method, f"/items/{item_id}", headers=alice.headers, **kwargs
        )
        assert response.status_code in (404, 422), (method, response.status_code, response.text)
        assert_problem(response, response.status_code)


@pytest.mark.parametrize(
    "path",
    ["/nope", "/items/1/2", "/auth", "/auth/", "/%ff", "/items%00", "/" + "a" * 10_000, "//items"],
)
async def test_unknown_paths_are_404_problems(harness: Harness, path: str) -> None:
    response = await harness.client.get(path)
    assert response.status_code in (401, 404), (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


@pytest.mark.parametrize(("method", "path"), [("PUT", "/items"), ("DELETE", "/auth/token")])
async def test_wrong_method_is_a_405_problem(harness: Harness, method: str, path: str) -> None:
    response = await harness.client.request(method, path)
    assert_problem(response, 405)
