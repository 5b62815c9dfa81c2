"""CSRF tokens bound to a session (SPEC §4.3): derived from the session's secret id under a key of
their own, so a token is worthless without its session and in any other session."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pytest

from bastion.csrf import CSRF_HEADER, UNSAFE_METHODS, csrf_token_for, is_valid_csrf_token
from bastion.derived_keys import derive_key

ROOT = b"r" * 48
KEY = derive_key(ROOT, "csrf")


def session_token() -> str:
    return secrets.token_urlsafe(32)


def test_unsafe_methods_are_the_ones_the_spec_names() -> None:
    assert {"POST", "PUT", "PATCH", "DELETE"} == UNSAFE_METHODS
    assert not {"GET", "HEAD", "OPTIONS"} & UNSAFE_METHODS


def test_the_header_is_x_csrf_token() -> None:
    assert CSRF_HEADER.lower() == "x-csrf-token"


def test_the_token_is_deterministic_per_session_and_key() -> None:
    token = session_token()
    assert csrf_token_for(token, KEY) == csrf_token_for(token, KEY)
    assert re.fullmatch(r"[0-9a-f]{64}", csrf_token_for(token, KEY))


def test_the_token_is_an_hmac_of_the_session_under_the_csrf_key() -> None:
    token = session_token()
    expected = hmac.new(KEY, token.encode(), hashlib.sha256).hexdigest()
    assert csrf_token_for(token, KEY) == expected


def test_the_token_is_not_the_session_or_its_digest() -> None:
    """The CSRF cookie is readable by scripts; it must not give the session away."""
    token = session_token()
    csrf = csrf_token_for(token, KEY)
    assert token not in csrf
    assert csrf != hashlib.sha256(token.encode()).hexdigest()


def test_the_csrf_key_is_derived_for_this_purpose_only() -> None:
    assert KEY != ROOT
    assert derive_key(ROOT, "api-key-pepper") != KEY
    assert derive_key(ROOT, "session") != KEY


def test_different_sessions_get_different_tokens() -> None:
    tokens = {csrf_token_for(session_token(), KEY) for _ in range(200)}
    assert len(tokens) == 200


def test_a_token_of_another_key_does_not_validate() -> None:
    token = session_token()
    foreign = csrf_token_for(token, derive_key(b"s" * 48, "csrf"))
    assert not is_valid_csrf_token(foreign, token, KEY)


def test_the_right_token_validates() -> None:
    token = session_token()
    assert is_valid_csrf_token(csrf_token_for(token, KEY), token, KEY)


def test_a_token_of_another_session_does_not_validate() -> None:
    mine, theirs = session_token(), session_token()
    assert not is_valid_csrf_token(csrf_token_for(theirs, KEY), mine, KEY)


@pytest.mark.parametrize(
    "candidate",
    [
        None,
        "",
        " ",
        "0" * 64,
        "x" * 257,
        "x" * 10_000,
        "é" * 64,
        "\ud800" * 64,
        "\x00" * 64,
    ],
    ids=["none", "empty", "space", "zeros", "long", "ten-k", "non-ascii", "surrogates", "nul"],
)
def test_junk_candidates_are_refused_without_raising(candidate: str | None) -> None:
    token = session_token()
    assert not is_valid_csrf_token(candidate, token, KEY)


def test_near_misses_are_refused() -> None:
    token = session_token()
    right = csrf_token_for(token, KEY)
    for near in (
        right.upper(),
        right[:-1],
        right + "0",
        " " + right,
        right + " ",
        right[:-1] + ("0" if right[-1] != "0" else "1"),
        right[::-1],
    ):
        assert near != right
        assert not is_valid_csrf_token(near, token, KEY), near
