"""``GET /.well-known/jwks.json`` and asymmetric signing (SPEC §4.1, §4.2)."""

from __future__ import annotations

from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.conftest import Harness
from tests.integration.conftest import StartApp
from tests.integration.helpers import bearer, header_of


def ed25519_pem(path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


async def test_hs256_publishes_no_key(harness: Harness) -> None:
    response = await harness.client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json() == {"keys": []}


async def test_eddsa_publishes_the_public_key_its_tokens_verify_with(
    start_app: StartApp, tmp_path: Path
) -> None:
    key_file = ed25519_pem(tmp_path / "signing-key.pem")
    harness = await start_app(jwt_algorithm="EdDSA", jwt_private_key_file=key_file)
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    jwk = keys[0]
    assert jwk["kty"] == "OKP"
    assert jwk["crv"] == "Ed25519"
    assert "d" not in jwk  # never the private half
    header = header_of(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    assert jwk["kid"] == header["kid"]

    public = jwt.PyJWK(jwk, algorithm="EdDSA")
    claims = jwt.decode(
        tokens["access_token"],
        public.key,
        algorithms=["EdDSA"],
        audience="bastion",
        issuer="bastion",
    )
    assert claims["sub"]
    me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200


async def test_eddsa_tokens_signed_by_another_key_are_refused(
    start_app: StartApp, tmp_path: Path
) -> None:
    key_file = ed25519_pem(tmp_path / "signing-key.pem")
    harness = await start_app(jwt_algorithm="EdDSA", jwt_private_key_file=key_file)
    await harness.create_user("alice")
    real = await harness.login("alice")
    claims = jwt.decode(real["access_token"], options={"verify_signature": False})
    header = header_of(real["access_token"])
    forged = jwt.encode(
        claims,
        ed25519.Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": header["kid"]},
    )

    response = await harness.client.get("/auth/me", headers=bearer(forged))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
