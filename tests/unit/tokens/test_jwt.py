"""AccessTokenCodec: RFC 9068 access tokens issued and verified as SPEC §4.2 says.

PyJWT checks ``exp`` against the real clock, so tokens meant for the uncached path are issued
at real timestamps; the codec's own clock (which the verification cache uses) is faked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bastion.errors import InvalidToken
from bastion.settings import JWTAlgorithm
from bastion.tokens.jwt import (
    CLOCK_SKEW_SECONDS,
    MAX_TOKEN_BYTES,
    AccessTokenCodec,
)
from bastion.tokens.keys import KeySet, hmac_key, pem_key
from tests.conftest import TEST_SECRET, make_settings

TTL = 900
SCOPES = frozenset({"items:write", "items:read"})
SECRET = TEST_SECRET.encode()
OTHER_SECRET = b"another-secret-of-more-than-32-bytes-" + b"x" * 8


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def real_now() -> int:
    """A whole second at or just after the real time, so that margins below are never eaten
    by a fractional second."""
    return math.ceil(time.time())


def codec_for(
    keys: KeySet | None = None,
    *,
    clock: Callable[[], float] = time.time,
    issuer: str = "bastion",
    audience: str = "bastion",
) -> AccessTokenCodec:
    return AccessTokenCodec(
        keys or KeySet(hmac_key(SECRET)),
        issuer=issuer,
        audience=audience,
        ttl_seconds=TTL,
        clock=clock,
    )


def sign(payload: dict[str, object], *, headers: dict[str, object] | None = None) -> str:
    key = hmac_key(SECRET)
    return jwt.encode(
        payload,
        SECRET,
        algorithm="HS256",
        headers={"typ": "at+jwt", "kid": key.kid, **(headers or {})},
    )


def valid_payload(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    payload: dict[str, object] = {
        "iss": "bastion",
        "aud": "bastion",
        "sub": "42",
        "exp": now + TTL,
        "iat": now,
        "nbf": now,
        "jti": "jti-1",
        "scope": "items:read",
        "sid": "family-1",
    }
    payload.update(overrides)
    return payload


# ----------------------------------------------------------------------------- issue/verify


def test_an_issued_token_verifies_to_the_same_claims() -> None:
    codec = codec_for()

    issued = codec.issue("42", SCOPES, "family-1")
    claims = codec.verify(issued.token)

    assert claims == issued.claims
    assert claims.subject == "42"
    assert claims.scopes == SCOPES
    assert claims.family_id == "family-1"
    assert claims.expires_at - claims.issued_at == TTL


def test_an_issued_token_carries_every_rfc_9068_claim_and_header() -> None:
    keys = KeySet(hmac_key(SECRET))
    now = int(time.time())
    codec = codec_for(keys, clock=FakeClock(now), issuer="https://iss", audience="api")

    issued = codec.issue("42", SCOPES, "family-1")

    header = jwt.get_unverified_header(issued.token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    assert header["kid"] == keys.current.kid
    payload = jwt.decode(
        issued.token, SECRET, algorithms=["HS256"], audience="api", issuer="https://iss"
    )
    assert payload == {
        "iss": "https://iss",
        "aud": "api",
        "sub": "42",
        "exp": now + TTL,
        "iat": now,
        "nbf": now,
        "jti": issued.claims.token_id,
        "scope": "items:read items:write",
        "sid": "family-1",
    }


def test_every_token_gets_its_own_unguessable_jti() -> None:
    codec = codec_for()

    ids = {codec.issue("42", SCOPES, "f").claims.token_id for _ in range(200)}

    assert len(ids) == 200
    assert all(len(token_id) >= 20 for token_id in ids)


def test_a_token_with_no_scopes_round_trips_with_an_empty_scope_set() -> None:
    codec = codec_for()

    assert codec.verify(codec.issue("7", frozenset(), "f").token).scopes == frozenset()


@pytest.mark.parametrize("algorithm", [JWTAlgorithm.EDDSA, JWTAlgorithm.ES256])
def test_asymmetric_keys_issue_tokens_that_verify(tmp_path: Path, algorithm: JWTAlgorithm) -> None:
    private = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm is JWTAlgorithm.EDDSA
        else ec.generate_private_key(ec.SECP256R1())
    )
    path = tmp_path / "key.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keys = KeySet(pem_key(path, algorithm))
    codec = codec_for(keys)

    issued = codec.issue("42", SCOPES, "f")

    assert jwt.get_unverified_header(issued.token)["alg"] == algorithm.value
    assert codec.verify(issued.token) == issued.claims


# ----------------------------------------------------------------------------- expiry


def test_an_expired_token_is_valid_within_30_seconds_of_skew() -> None:
    now = real_now()
    codec = codec_for(clock=FakeClock(now - TTL - (CLOCK_SKEW_SECONDS - 1)))

    issued = codec.issue("42", SCOPES, "f")

    assert issued.claims.expires_at == now - 29
    assert codec_for().verify(issued.token).token_id == issued.claims.token_id


def test_a_token_expired_more_than_30_seconds_ago_is_rejected() -> None:
    now = math.floor(time.time())
    codec = codec_for(clock=FakeClock(now - TTL - (CLOCK_SKEW_SECONDS + 1)))

    issued = codec.issue("42", SCOPES, "f")

    assert issued.claims.expires_at == now - 31
    with pytest.raises(InvalidToken, match="expired"):
        codec_for().verify(issued.token)


def test_a_token_not_yet_valid_beyond_the_skew_is_rejected() -> None:
    now = int(time.time())
    token = sign(valid_payload(nbf=now + 120, iat=now))

    with pytest.raises(InvalidToken):
        codec_for().verify(token)


def test_a_cached_token_returns_the_same_claims_without_a_second_signature_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = codec_for()
    issued = codec.issue("42", SCOPES, "f")
    first = codec.verify(issued.token)

    def no_decode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a cached token must not be decoded again")

    monkeypatch.setattr(jwt, "decode", no_decode)

    assert codec.verify(issued.token) is first


def test_a_cached_token_still_expires_on_the_codec_clock() -> None:
    clock = FakeClock(real_now())
    codec = codec_for(clock=clock)
    issued = codec.issue("42", SCOPES, "f")
    assert codec.verify(issued.token) == issued.claims  # now cached
    exp = issued.claims.expires_at

    clock.now = exp + CLOCK_SKEW_SECONDS - 1
    assert codec.verify(issued.token) == issued.claims

    clock.now = exp + CLOCK_SKEW_SECONDS + 1
    with pytest.raises(InvalidToken, match="expired"):
        codec.verify(issued.token)


def test_an_invalid_token_is_not_cached() -> None:
    codec = codec_for()
    token = codec_for(KeySet(hmac_key(OTHER_SECRET))).issue("42", SCOPES, "f").token

    for _ in range(2):
        with pytest.raises(InvalidToken):
            codec.verify(token)


def test_the_cache_is_bounded_and_evicts_the_oldest_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = AccessTokenCodec(
        KeySet(hmac_key(SECRET)),
        issuer="bastion",
        audience="bastion",
        ttl_seconds=TTL,
        cache_size=2,
    )
    tokens = [codec.issue(str(i), SCOPES, "f").token for i in range(1, 4)]
    for token in tokens:
        codec.verify(token)
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: object, **kwargs: object) -> object:
        decoded.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)

    codec.verify(tokens[2])
    assert decoded == []
    codec.verify(tokens[0])
    assert decoded == [tokens[0]]


# ----------------------------------------------------------------------------- rotation


def test_a_token_of_the_previous_key_verifies_while_that_key_is_configured(
    tmp_path: Path,
) -> None:
    old_keys = KeySet(hmac_key(OTHER_SECRET))
    old_token = codec_for(old_keys).issue("42", SCOPES, "f").token
    rotated = KeySet.from_settings(
        make_settings(
            "sqlite+aiosqlite://",
            tmp_path,
            previous_secret_key=OTHER_SECRET.decode(),
        )
    )

    claims = codec_for(rotated).verify(old_token)

    assert claims.subject == "42"


def test_a_token_of_the_previous_key_is_rejected_once_that_key_is_dropped(
    tmp_path: Path,
) -> None:
    old_token = codec_for(KeySet(hmac_key(OTHER_SECRET))).issue("42", SCOPES, "f").token
    current_only = KeySet.from_settings(make_settings("sqlite+aiosqlite://", tmp_path))

    with pytest.raises(InvalidToken, match="not signed by a key of this server"):
        codec_for(current_only).verify(old_token)


def test_after_a_rotation_new_tokens_are_signed_with_the_current_key(tmp_path: Path) -> None:
    rotated = KeySet.from_settings(
        make_settings("sqlite+aiosqlite://", tmp_path, previous_secret_key=OTHER_SECRET.decode())
    )

    token = codec_for(rotated).issue("42", SCOPES, "f").token

    assert jwt.get_unverified_header(token)["kid"] == hmac_key(SECRET).kid
    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience="bastion")["sub"] == "42"


# ----------------------------------------------------------------------------- refusals


def test_a_token_for_another_audience_is_rejected() -> None:
    token = codec_for(audience="other-api").issue("42", SCOPES, "f").token

    with pytest.raises(InvalidToken):
        codec_for().verify(token)


def test_a_token_of_another_issuer_is_rejected() -> None:
    token = codec_for(issuer="someone-else").issue("42", SCOPES, "f").token

    with pytest.raises(InvalidToken):
        codec_for().verify(token)


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope", "sid"])
def test_a_token_missing_a_required_claim_is_rejected(claim: str) -> None:
    payload = valid_payload()
    del payload[claim]

    with pytest.raises(InvalidToken):
        codec_for().verify(sign(payload))


@pytest.mark.parametrize("typ", [None, "JWT", "id+jwt"])
def test_a_token_without_the_access_token_type_is_rejected(typ: str | None) -> None:
    key = hmac_key(SECRET)
    headers: dict[str, object] = {"kid": key.kid, "typ": typ}
    token = jwt.encode(valid_payload(), SECRET, algorithm="HS256", headers=headers)

    with pytest.raises(InvalidToken, match="not an access token"):
        codec_for().verify(token)


def test_the_media_type_form_of_the_access_token_type_is_accepted() -> None:
    token = sign(valid_payload(), headers={"typ": "application/at+jwt"})

    assert codec_for().verify(token).subject == "42"


def test_a_token_with_an_unknown_kid_is_rejected() -> None:
    token = sign(valid_payload(), headers={"kid": "not-a-configured-key"})

    with pytest.raises(InvalidToken, match="not signed by a key of this server"):
        codec_for().verify(token)


def test_a_token_larger_than_8_kib_is_rejected_before_parsing() -> None:
    token = sign(valid_payload(padding="x" * MAX_TOKEN_BYTES))

    with pytest.raises(InvalidToken, match="malformed"):
        codec_for().verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "é.é.é"])
def test_garbage_is_rejected_as_malformed(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        codec_for().verify(garbage)


@pytest.mark.parametrize(
    "overrides",
    [{"sub": 42}, {"sub": "alice"}, {"scope": ["items:read"]}, {"sid": 1}, {"jti": 5}],
    ids=["numeric-sub", "non-numeric-sub", "list-scope", "numeric-sid", "numeric-jti"],
)
def test_a_well_signed_token_of_odd_shape_is_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidToken):
        codec_for().verify(sign(valid_payload(**overrides)))


def test_a_tampered_token_is_rejected() -> None:
    token = codec_for().issue("42", SCOPES, "f").token
    header, _, signature = token.split(".")
    forged = codec_for(KeySet(hmac_key(OTHER_SECRET))).issue("1", SCOPES, "f").token
    spliced = ".".join([header, forged.split(".")[1], signature])

    with pytest.raises(InvalidToken):
        codec_for().verify(spliced)
