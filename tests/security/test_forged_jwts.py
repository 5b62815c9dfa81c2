"""Forged, tampered and odd-shaped access tokens (SPEC §3 401 rules, §4.2 access tokens).

Each forged token goes to a protected route over HTTP and must get 401 with the RFC 6750
``invalid_token`` challenge and a problem body. Tokens are minted with the server's own secret
and ``kid`` where the point is a claim or header rule, so that only the one thing under test is
wrong; ``test_token_minted_like_the_server_does_is_accepted`` proves the minting is right.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.conftest import TEST_SECRET, Harness
from tests.security.conftest import Account
from tests.security.helpers import (
    DROP,
    assert_invalid_token,
    b64url,
    b64url_decode,
    bearer,
    forge_hs256,
    server_header,
    sign,
    valid_claims,
)

PROTECTED = "/secure-data"
ATTACKER_SECRET = "attacker-controlled-hmac-secret-" + "x" * 32


async def get_with(harness: Harness, token: str) -> httpx.Response:
    return await harness.client.get(PROTECTED, headers=bearer(token))


async def assert_accepted(harness: Harness, token: str, username: str = "alice") -> None:
    response = await get_with(harness, token)
    assert response.status_code == 200, response.text
    assert response.json()["user"] == username


async def assert_rejected(harness: Harness, token: str) -> dict[str, Any]:
    return assert_invalid_token(await get_with(harness, token), token)


def tamper(token: str, **changes: Any) -> str:
    """The same header and signature over a payload with ``changes`` applied."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    new_payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{new_payload}.{signature}"


# ------------------------------------------------------------------------------ controls


async def test_genuine_access_token_is_accepted(harness: Harness, alice: Account) -> None:
    await assert_accepted(harness, alice.access_token)


async def test_token_minted_like_the_server_does_is_accepted(
    harness: Harness, alice: Account
) -> None:
    await assert_accepted(harness, forge_hs256(harness, valid_claims(harness, alice.id)))


# ------------------------------------------------------------------------------ signatures


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("with_signature", [False, True], ids=["empty-sig", "kept-sig"])
async def test_alg_none_token_is_rejected_with_401(
    harness: Harness, alice: Account, alg: str, with_signature: bool
) -> None:
    claims = valid_claims(harness, alice.id)
    token = sign(server_header(harness, alg=alg), claims, None, "none")
    if with_signature:
        genuine = forge_hs256(harness, claims)
        token += genuine.rsplit(".", 1)[1]
    await assert_rejected(harness, token)


async def test_token_signed_with_another_hmac_key_is_rejected(
    harness: Harness, alice: Account
) -> None:
    token = forge_hs256(harness, valid_claims(harness, alice.id), secret=ATTACKER_SECRET)
    await assert_rejected(harness, token)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_token_signed_with_the_right_secret_but_an_unpinned_algorithm_is_rejected(
    harness: Harness, alice: Account, alg: str
) -> None:
    token = sign(server_header(harness, alg=alg), valid_claims(harness, alice.id), TEST_SECRET, alg)
    await assert_rejected(harness, token)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"scope": "items:read items:write keys:manage admin"}, id="scope-widened"),
        pytest.param({"sub": "VICTIM"}, id="sub-swapped"),
        pytest.param({"exp": 4_102_444_800}, id="exp-extended"),
        pytest.param({"sid": "another-family"}, id="sid-changed"),
    ],
)
async def test_tampered_payload_with_original_signature_is_rejected(
    harness: Harness, alice: Account, mallory: Account, change: dict[str, Any]
) -> None:
    change = {k: (str(alice.id) if v == "VICTIM" else v) for k, v in change.items()}
    token = tamper(mallory.access_token, **change)
    await assert_rejected(harness, token)


async def test_token_with_stripped_signature_is_rejected(harness: Harness, alice: Account) -> None:
    head, payload, _ = alice.access_token.split(".")
    await assert_rejected(harness, f"{head}.{payload}.")


async def test_signature_of_another_genuine_token_is_rejected(
    harness: Harness, alice: Account, mallory: Account
) -> None:
    head, payload, _ = alice.access_token.split(".")
    signature = mallory.access_token.rsplit(".", 1)[1]
    await assert_rejected(harness, f"{head}.{payload}.{signature}")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "..",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig.extra.jwe",
        "eyJ.eyJ.eyJ",
        "!!!.???.###",
    ],
)
async def test_malformed_token_is_rejected_with_401(harness: Harness, token: str) -> None:
    await assert_rejected(harness, token)


@pytest.mark.parametrize(
    "payload",
    [b"[1,2]", b"null", b'"a string"', b"42", b"\xff\xfe\x00", b"{not json"],
    ids=["list", "null", "string", "number", "binary", "broken-json"],
)
async def test_well_signed_token_whose_payload_is_not_a_claims_object_is_rejected(
    harness: Harness, payload: bytes
) -> None:
    token = sign(server_header(harness), payload, TEST_SECRET, "HS256")
    await assert_rejected(harness, token)


async def test_refresh_token_used_as_bearer_token_is_rejected(
    harness: Harness, alice: Account
) -> None:
    await assert_rejected(harness, alice.refresh_token)


# ------------------------------------------------------------------------------ time claims


async def test_expired_token_is_rejected_with_401(harness: Harness, alice: Account) -> None:
    now = int(time.time())
    claims = valid_claims(harness, alice.id, iat=now - 3600, nbf=now - 3600, exp=now - 1800)
    body = await assert_rejected(harness, forge_hs256(harness, claims))
    assert "expired" in body["detail"].lower()


async def test_token_expired_within_the_30_second_skew_is_still_accepted(
    harness: Harness, alice: Account
) -> None:
    now = int(time.time())
    claims = valid_claims(harness, alice.id, iat=now - 900, nbf=now - 900, exp=now - 10)
    await assert_accepted(harness, forge_hs256(harness, claims))


async def test_token_expired_beyond_the_30_second_skew_is_rejected(
    harness: Harness, alice: Account
) -> None:
    now = int(time.time())
    claims = valid_claims(harness, alice.id, iat=now - 900, nbf=now - 900, exp=now - 45)
    await assert_rejected(harness, forge_hs256(harness, claims))


async def test_token_not_yet_valid_beyond_the_30_second_skew_is_rejected(
    harness: Harness, alice: Account
) -> None:
    now = int(time.time())
    claims = valid_claims(harness, alice.id, nbf=now + 120, exp=now + 900)
    await assert_rejected(harness, forge_hs256(harness, claims))


async def test_token_not_yet_valid_within_the_30_second_skew_is_accepted(
    harness: Harness, alice: Account
) -> None:
    now = int(time.time())
    claims = valid_claims(harness, alice.id, nbf=now + 10, iat=now + 10, exp=now + 900)
    await assert_accepted(harness, forge_hs256(harness, claims))


async def test_token_issued_in_the_future_beyond_the_skew_is_rejected(
    harness: Harness, alice: Account
) -> None:
    now = int(time.time())
    claims = valid_claims(harness, alice.id, iat=now + 3600, exp=now + 4000)
    await assert_rejected(harness, forge_hs256(harness, claims))


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope", "sid"])
async def test_token_missing_a_required_claim_is_rejected(
    harness: Harness, alice: Account, claim: str
) -> None:
    claims = valid_claims(harness, alice.id, **{claim: DROP})
    await assert_rejected(harness, forge_hs256(harness, claims))


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope", "sid"])
async def test_token_with_a_null_required_claim_is_rejected(
    harness: Harness, alice: Account, claim: str
) -> None:
    claims = valid_claims(harness, alice.id, **{claim: None})
    await assert_rejected(harness, forge_hs256(harness, claims))


# ------------------------------------------------------------------------------ iss / aud


@pytest.mark.parametrize(
    "aud",
    ["other-api", "bastion-evil", "evil-bastion", "bastio", "BASTION", "bastion ", "", []],
)
async def test_token_for_another_audience_is_rejected(
    harness: Harness, alice: Account, aud: Any
) -> None:
    await assert_rejected(harness, forge_hs256(harness, valid_claims(harness, alice.id, aud=aud)))


async def test_token_whose_audience_list_adds_another_audience_is_rejected(
    harness: Harness, alice: Account
) -> None:
    claims = valid_claims(harness, alice.id, aud=["other-api", "bastion"])
    await assert_rejected(harness, forge_hs256(harness, claims))


@pytest.mark.parametrize(
    "iss",
    [
        "evil",
        "bastion-evil",
        "evil-bastion",
        "bastio",
        "astion",
        "Bastion",
        "bastion ",
        "https://bastion",
        "",
        ["bastion"],
        ["evil", "bastion"],
    ],
)
async def test_token_from_another_issuer_is_rejected(
    harness: Harness, alice: Account, iss: Any
) -> None:
    await assert_rejected(harness, forge_hs256(harness, valid_claims(harness, alice.id, iss=iss)))


# ------------------------------------------------------------------------------ size


async def test_token_over_8_kib_is_rejected_even_when_well_signed(
    harness: Harness, alice: Account
) -> None:
    claims = valid_claims(harness, alice.id, pad="x" * 8 * 1024)
    token = forge_hs256(harness, claims)
    assert len(token) > 8 * 1024
    await assert_rejected(harness, token)


async def test_token_just_under_8_kib_is_accepted(harness: Harness, alice: Account) -> None:
    claims = valid_claims(harness, alice.id, pad="x" * 5800)
    token = forge_hs256(harness, claims)
    assert 7 * 1024 < len(token) <= 8 * 1024
    await assert_accepted(harness, token)


async def test_huge_bearer_token_is_rejected_with_401(harness: Harness) -> None:
    token = "a" * 200_000
    await assert_rejected(harness, token)


# ------------------------------------------------------------------------------ header: kid, typ


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param(DROP, id="no-kid"),
        pytest.param("unknown-kid", id="unknown"),
        pytest.param("", id="empty"),
        pytest.param(None, id="null"),
        pytest.param(123, id="number"),
        pytest.param(["KID"], id="list-with-kid"),
        pytest.param({"kid": "KID"}, id="object"),
        pytest.param("../../../../dev/null", id="path-traversal"),
        pytest.param("' OR '1'='1", id="sql-injection"),
        pytest.param("KID ", id="kid-with-trailing-space"),
    ],
)
async def test_token_whose_kid_is_not_a_configured_key_is_rejected(
    harness: Harness, alice: Account, kid: Any
) -> None:
    server_kid = harness.bastion.keys.current.kid
    if kid == ["KID"]:
        kid = [server_kid]
    elif kid == {"kid": "KID"}:
        kid = {"kid": server_kid}
    elif kid == "KID ":
        kid = server_kid + " "
    token = forge_hs256(harness, valid_claims(harness, alice.id), kid=kid)
    await assert_rejected(harness, token)


@pytest.mark.parametrize(
    "typ",
    [
        pytest.param("JWT", id="JWT"),
        pytest.param("jwt", id="jwt"),
        pytest.param(DROP, id="no-typ"),
        pytest.param("", id="empty"),
        pytest.param("id+jwt", id="id-token"),
        pytest.param("at+jwt+evil", id="suffix"),
        pytest.param(["at+jwt"], id="list"),
        pytest.param(None, id="null"),
    ],
)
async def test_token_that_is_not_typed_at_jwt_is_rejected(
    harness: Harness, alice: Account, typ: Any
) -> None:
    token = forge_hs256(harness, valid_claims(harness, alice.id), typ=typ)
    await assert_rejected(harness, token)


# ------------------------------------------------------------------------------ jku / jwk / x5u


def _attacker_ec_key() -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = dict(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    return private, jwk


@pytest.mark.parametrize("kid", ["server", "attacker", "none"])
async def test_embedded_jwk_with_an_attacker_hmac_key_is_rejected(
    harness: Harness, alice: Account, kid: str
) -> None:
    jwk = {"kty": "oct", "k": b64url(ATTACKER_SECRET.encode()), "kid": "attacker"}
    kid_value: Any = {"server": harness.bastion.keys.current.kid, "attacker": "attacker"}.get(
        kid, DROP
    )
    token = forge_hs256(
        harness, valid_claims(harness, alice.id), secret=ATTACKER_SECRET, jwk=jwk, kid=kid_value
    )
    await assert_rejected(harness, token)


@pytest.mark.parametrize("kid", ["server", "attacker", "none"])
async def test_embedded_jwk_with_an_attacker_ec_key_is_rejected(
    harness: Harness, alice: Account, kid: str
) -> None:
    private, jwk = _attacker_ec_key()
    kid_value: Any = {"server": harness.bastion.keys.current.kid, "attacker": "attacker"}.get(
        kid, DROP
    )
    header = server_header(harness, alg="ES256", jwk={**jwk, "kid": "attacker"}, kid=kid_value)
    token = sign(header, valid_claims(harness, alice.id), private, "ES256")
    await assert_rejected(harness, token)


@pytest.mark.parametrize("member", ["jku", "x5u"])
@pytest.mark.parametrize("alg", ["ES256", "HS256"])
async def test_key_url_header_pointing_at_an_attacker_key_is_rejected(
    harness: Harness, alice: Account, member: str, alg: str
) -> None:
    """``jku``/``x5u`` name where to fetch a key; the attacker hosts one and signs with it."""
    url = "https://attacker.example/.well-known/jwks.json"
    claims = valid_claims(harness, alice.id)
    for kid in ("attacker", harness.bastion.keys.current.kid):
        header = server_header(harness, alg=alg, kid=kid, **{member: url})
        if alg == "ES256":
            private, _ = _attacker_ec_key()
            token = sign(header, claims, private, "ES256")
        else:
            token = sign(header, claims, ATTACKER_SECRET, "HS256")
        await assert_rejected(harness, token)


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c"])
async def test_key_location_headers_on_a_genuine_token_are_ignored(
    harness: Harness, alice: Account, member: str
) -> None:
    """SPEC §4.2: these headers are ignored; the configured key alone decides."""
    value: Any = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": {"kty": "oct", "k": b64url(ATTACKER_SECRET.encode())},
        "x5c": ["MIIB"],
    }[member]
    token = forge_hs256(harness, valid_claims(harness, alice.id), **{member: value})
    await assert_accepted(harness, token)


# ------------------------------------------------------------------------------ claim shapes


@pytest.mark.parametrize(
    "sub",
    [
        pytest.param("alice", id="name"),
        pytest.param("", id="empty"),
        pytest.param("1.0", id="decimal"),
        pytest.param("-1", id="negative"),
        pytest.param(" 1", id="leading-space"),
        pytest.param("1 ", id="trailing-space"),
        pytest.param("0x1", id="hex"),
        pytest.param("1e0", id="exponent"),
        pytest.param("1 OR 1=1", id="sql"),
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\u0661", id="arabic-indic-one"),
        pytest.param("\uff11", id="fullwidth-one"),
    ],
)
async def test_token_with_a_non_digit_sub_is_rejected(
    harness: Harness, alice: Account, sub: str
) -> None:
    await assert_rejected(harness, forge_hs256(harness, valid_claims(harness, alice.id, sub=sub)))


@pytest.mark.parametrize(
    "sub",
    [
        "0",
        "999999",
        str(2**31),
        str(2**63),
        "9" * 19,
        "9" * 26,
        "0" * 30 + "1",
    ],
    ids=["zero", "unknown", "int32-overflow", "int64-overflow", "19-nines", "26-nines", "zeros"],
)
async def test_token_for_a_user_that_does_not_exist_is_rejected(
    harness: Harness, alice: Account, sub: str
) -> None:
    await assert_rejected(harness, forge_hs256(harness, valid_claims(harness, alice.id, sub=sub)))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"scope": ["items:read", "items:write"]}, id="scope-list"),
        pytest.param({"scope": {"items:read": True}}, id="scope-object"),
        pytest.param({"scope": 1}, id="scope-number"),
        pytest.param({"sub": "SUB_AS_INT"}, id="sub-number"),
        pytest.param({"sub": ["SUB"]}, id="sub-list"),
        pytest.param({"jti": 12345}, id="jti-number"),
        pytest.param({"sid": ["family"]}, id="sid-list"),
        pytest.param({"exp": "9999999999"}, id="exp-string"),
        pytest.param({"iat": "now"}, id="iat-string"),
        pytest.param({"nbf": [0]}, id="nbf-list"),
    ],
)
async def test_token_with_a_claim_of_the_wrong_type_is_rejected(
    harness: Harness, alice: Account, changes: dict[str, Any]
) -> None:
    if changes.get("sub") == "SUB_AS_INT":
        changes = {"sub": alice.id}
    elif changes.get("sub") == ["SUB"]:
        changes = {"sub": [str(alice.id)]}
    await assert_rejected(harness, forge_hs256(harness, valid_claims(harness, alice.id, **changes)))


async def test_forged_token_for_another_user_without_the_key_is_rejected(
    harness: Harness, alice: Account, mallory: Account
) -> None:
    """Mallory mints a token for Alice with a guessed key: the same kid, but not the secret."""
    for guess in ("secret", "bastion", "changeme", "", secrets.token_urlsafe(32)):
        token = forge_hs256(harness, valid_claims(harness, alice.id), secret=guess)
        await assert_rejected(harness, token)
