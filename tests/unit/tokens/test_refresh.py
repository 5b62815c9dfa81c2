"""Refresh tokens: 256-bit opaque values, stored only as a SHA-256 digest (SPEC §4.2)."""

from __future__ import annotations

import base64
import hashlib
import re

from bastion.tokens.refresh import new_family_id, new_refresh_token, refresh_token_digest

URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def test_a_refresh_token_is_256_random_bits_in_url_safe_base64() -> None:
    token, _ = new_refresh_token()

    assert URL_SAFE.fullmatch(token)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 32


def test_refresh_tokens_are_unique() -> None:
    tokens = {new_refresh_token()[0] for _ in range(1000)}

    assert len(tokens) == 1000


def test_the_stored_digest_is_the_sha256_hex_of_the_token() -> None:
    token, digest = new_refresh_token()

    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest


def test_the_digest_is_deterministic() -> None:
    assert refresh_token_digest("some-token") == refresh_token_digest("some-token")
    assert refresh_token_digest("some-token") == hashlib.sha256(b"some-token").hexdigest()


def test_different_tokens_have_different_digests() -> None:
    assert refresh_token_digest("token-a") != refresh_token_digest("token-b")


def test_a_token_with_unpaired_surrogates_still_has_a_digest() -> None:
    # A client can send anything; hashing it must never raise (it will match nothing).
    assert re.fullmatch(r"[0-9a-f]{64}", refresh_token_digest("bad\udcff"))


def test_family_ids_are_unique_and_url_safe() -> None:
    ids = {new_family_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(URL_SAFE.fullmatch(i) and len(i) >= 20 for i in ids)
