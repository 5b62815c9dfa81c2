"""Tools of the attacker: hand-built JWS tokens, and what a client checks in the answers.

Tokens are assembled by hand rather than with ``jwt.encode`` so that a test controls every byte
of the header (``alg: none``, a missing ``typ``, a public key used as an HMAC secret: things a
careful library refuses to produce).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

import httpx
from jwt.algorithms import get_default_algorithms

from tests.conftest import TEST_SECRET, Harness

PROBLEM_JSON = "application/problem+json"
MISSING_CHALLENGE = 'Bearer realm="bastion"'
INVALID_TOKEN_CHALLENGE = re.compile(
    r'^Bearer realm="bastion", error="invalid_token", error_description="[^"\\]+"$'
)
OTHER_CHALLENGE = re.compile(r'^(ApiKey|Cookie) realm="bastion"$')
"""Routes that also take API keys (or sessions) add their own bare challenge (SPEC §3)."""
_CHALLENGE_START = re.compile(r",\s*(?=[A-Za-z][\w-]* [A-Za-z_]+=)")
DROP = object()
"""Pass as a claim or header value to leave that member out altogether."""

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(raw)


def sign(header: dict[str, Any], payload: dict[str, Any] | bytes, key: Any, alg: str) -> str:
    """A compact JWS of exactly this header and payload, signed with ``key`` by ``alg``
    (``"none"`` gives an empty signature). HMAC keys may be any bytes, PEM text included."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    if alg.lower() == "none":
        signature = b""
    elif alg in _HMAC:
        secret = key.encode() if isinstance(key, str) else key
        signature = hmac.new(secret, signing_input.encode(), _HMAC[alg]).digest()
    else:
        signature = get_default_algorithms()[alg].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def valid_claims(harness: Harness, subject: int | str, **overrides: Any) -> dict[str, Any]:
    """Every claim the server requires, each right; ``overrides`` change (or DROP) some."""
    now = int(time.time())
    settings = harness.bastion.settings
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": str(subject),
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": secrets.token_urlsafe(16),
        "scope": "items:read items:write",
        "sid": "forged-" + secrets.token_hex(8),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


def server_header(harness: Harness, **overrides: Any) -> dict[str, Any]:
    """The header the server itself would write; ``overrides`` change (or DROP) members."""
    key = harness.bastion.keys.current
    header: dict[str, Any] = {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid}
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not DROP}


def forge_hs256(
    harness: Harness, claims: dict[str, Any], *, secret: bytes | str = TEST_SECRET, **header: Any
) -> str:
    """An HS256 token over ``claims``, by default signed with the server's own test secret and
    its current ``kid``: what a holder of the key could mint, so only the claims are at fault."""
    return sign(server_header(harness, alg="HS256", **header), claims, secret, "HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_no_store(response: httpx.Response) -> None:
    assert "no-store" in response.headers.get("cache-control", ""), response.headers


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem of this status: the five members, ``detail`` a sentence."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body, dict), body
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    return body


def assert_no_echo(response: httpx.Response, *secrets_: str) -> None:
    """None of ``secrets_`` (and never the signing secret) appears in the body or a header."""
    everything = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in (*secrets_, TEST_SECRET):
        assert secret not in everything, f"{secret[:40]!r} echoed in the response"


def challenges(www_authenticate: str) -> list[str]:
    """RFC 9110 §11.6.1: the challenges of one header, split where a new scheme begins."""
    return [c.strip() for c in _CHALLENGE_START.split(www_authenticate) if c.strip()]


def bearer_challenge(response: httpx.Response) -> str:
    """The ``Bearer`` challenge, checking that any other one is a bare realm challenge."""
    found = challenges(response.headers.get("www-authenticate", ""))
    bearers = [c for c in found if c.startswith("Bearer")]
    assert len(bearers) == 1, found
    for other in found:
        if other is not bearers[0]:
            assert OTHER_CHALLENGE.match(other), found
    return bearers[0]


def assert_invalid_token(response: httpx.Response, token: str | None = None) -> dict[str, Any]:
    """401 with the RFC 6750 ``invalid_token`` challenge, a problem body, no token echoed."""
    body = assert_problem(response, 401)
    challenge = bearer_challenge(response)
    assert INVALID_TOKEN_CHALLENGE.match(challenge), response.headers.get("www-authenticate")
    assert_no_store(response)
    if token:
        assert_no_echo(response, token)
    else:
        assert_no_echo(response)
    return body


def assert_missing_credentials(response: httpx.Response) -> dict[str, Any]:
    """401 with exactly the bare ``Bearer realm`` challenge: nothing was sent, nothing is wrong."""
    body = assert_problem(response, 401)
    assert bearer_challenge(response) == MISSING_CHALLENGE, response.headers
    assert "error=" not in response.headers["www-authenticate"]
    return body


def assert_oauth_error(response: httpx.Response, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2: 400, JSON ``{"error", "error_description"}``, never cached."""
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert body.get("error") == error, body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    assert isinstance(body.get("error_description", ""), str)
    assert_no_store(response)
    return body


def is_problem_or_oauth(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(PROBLEM_JSON):
        body = response.json()
        return body.get("status") == response.status_code and isinstance(body.get("detail"), str)
    if content_type.startswith("application/json"):
        body = response.json()
        return isinstance(body, dict) and isinstance(body.get("error"), str)
    return False
