"""Algorithm and key confusion against a server that signs with an asymmetric key (SPEC §4.2).

The classic attack: the server publishes its public key (JWKS), the attacker signs an HS256
token using that public key as the HMAC secret, and a verifier that lets the header choose the
algorithm accepts it. Here the server runs EdDSA (and ES256) from a PEM file made in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.conftest import TEST_SECRET, Harness, make_settings
from tests.security.conftest import Account
from tests.security.helpers import (
    DROP,
    assert_invalid_token,
    b64url,
    b64url_decode,
    bearer,
    server_header,
    sign,
    valid_claims,
)

PROTECTED = "/secure-data"


def _new_private_key(algorithm: str) -> Any:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(params=["EdDSA", "ES256"])
def settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Any:
    """Overrides the suite's ``settings``: the server signs with an asymmetric key."""
    private = _new_private_key(request.param)
    path = tmp_path / "jwt-signing-key.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return make_settings(
        database_url, tmp_path, jwt_algorithm=request.param, jwt_private_key_file=path
    )


def _public_key(harness: Harness) -> Any:
    return harness.bastion.keys.current.verify_key


def _public_key_encodings(harness: Harness) -> dict[str, bytes]:
    """Every form in which an attacker might find the public key and feed it to HMAC."""
    public = _public_key(harness)
    encodings = {
        "pem-spki": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der-spki": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "openssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }
    jwk = harness.bastion.keys.current.jwk or {}
    encodings["jwk-x"] = jwk.get("x", "").encode()
    if isinstance(public, ed25519.Ed25519PublicKey):
        encodings["raw"] = public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        encodings["raw"] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return encodings


async def test_token_from_the_asymmetric_server_is_accepted(
    harness: Harness, alice: Account
) -> None:
    response = await harness.client.get(PROTECTED, headers=alice.headers)
    assert response.status_code == 200, response.text
    header = json.loads(b64url_decode(alice.access_token.split(".")[0]))
    assert header["alg"] == harness.bastion.keys.current.algorithm


async def test_jwks_publishes_the_public_key_only(harness: Harness) -> None:
    response = await harness.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [harness.bastion.keys.current.kid]
    assert "d" not in keys[0], "the JWKS must not carry the private part"


@pytest.mark.parametrize("encoding", ["pem-spki", "der-spki", "openssh", "jwk-x", "raw"])
@pytest.mark.parametrize("kid", ["server", "none"])
async def test_hs256_token_signed_with_the_public_key_as_hmac_secret_is_rejected(
    harness: Harness, alice: Account, encoding: str, kid: str
) -> None:
    secret = _public_key_encodings(harness)[encoding]
    header = server_header(harness, alg="HS256", kid=DROP if kid == "none" else None)
    if kid == "server":
        header["kid"] = harness.bastion.keys.current.kid
    token = sign(header, valid_claims(harness, alice.id), secret, "HS256")
    response = await harness.client.get(PROTECTED, headers=bearer(token))
    assert_invalid_token(response, token)


async def test_hs256_token_signed_with_the_server_secret_key_is_rejected(
    harness: Harness, alice: Account
) -> None:
    """BASTION_SECRET_KEY is still set (it derives other secrets); it must not verify tokens."""
    for kid in (harness.bastion.keys.current.kid, DROP):
        header = server_header(harness, alg="HS256", kid=kid)
        token = sign(header, valid_claims(harness, alice.id), TEST_SECRET, "HS256")
        response = await harness.client.get(PROTECTED, headers=bearer(token))
        assert_invalid_token(response, token)


async def test_token_signed_by_another_key_of_the_same_type_is_rejected(
    harness: Harness, alice: Account
) -> None:
    algorithm = harness.bastion.keys.current.algorithm
    attacker = _new_private_key(algorithm)
    token = sign(server_header(harness), valid_claims(harness, alice.id), attacker, algorithm)
    response = await harness.client.get(PROTECTED, headers=bearer(token))
    assert_invalid_token(response, token)


async def test_token_signed_with_the_other_asymmetric_algorithm_is_rejected(
    harness: Harness, alice: Account
) -> None:
    """An EdDSA server refuses ES256 and the other way round, even with the server's kid."""
    other = "ES256" if harness.bastion.keys.current.algorithm == "EdDSA" else "EdDSA"
    attacker = _new_private_key(other)
    token = sign(
        server_header(harness, alg=other), valid_claims(harness, alice.id), attacker, other
    )
    response = await harness.client.get(PROTECTED, headers=bearer(token))
    assert_invalid_token(response, token)


async def test_alg_none_against_the_asymmetric_server_is_rejected(
    harness: Harness, alice: Account
) -> None:
    token = sign(server_header(harness, alg="none"), valid_claims(harness, alice.id), None, "none")
    response = await harness.client.get(PROTECTED, headers=bearer(token))
    assert_invalid_token(response, token)


async def test_embedded_jwk_of_an_attacker_key_is_not_trusted(
    harness: Harness, alice: Account
) -> None:
    algorithm = harness.bastion.keys.current.algorithm
    attacker = _new_private_key(algorithm)
    public = attacker.public_key()
    if algorithm == "EdDSA":
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        numbers = public.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    header = server_header(harness, jwk=jwk)
    token = sign(header, valid_claims(harness, alice.id), attacker, algorithm)
    response = await harness.client.get(PROTECTED, headers=bearer(token))
    assert_invalid_token(response, token)
