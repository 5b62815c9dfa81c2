"""Signing keys: PEM loading, algorithm binding, the published JWKS and RFC 7638 kids."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bastion.settings import JWTAlgorithm
from bastion.tokens.keys import KeyConfigurationError, KeySet, hmac_key, pem_key
from tests.conftest import TEST_SECRET, make_settings

PRIVATE_FIELDS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_private(path: Path, key: Any, encryption: Any = None) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            encryption or serialization.NoEncryption(),
        )
    )
    return path


def write_public(path: Path, key: Any) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def thumbprint(members: dict[str, str]) -> str:
    """RFC 7638 §3, computed here independently of the code under test."""
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@pytest.fixture
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# ----------------------------------------------------------------------------- PEM keys


def test_an_ed25519_pem_loads_as_an_eddsa_signing_key(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    key = pem_key(write_private(tmp_path / "k.pem", ed25519_key), JWTAlgorithm.EDDSA)

    assert key.algorithm == "EdDSA"
    assert key.sign_key is not None
    assert key.jwk is not None
    assert key.jwk["kty"] == "OKP"
    assert key.jwk["crv"] == "Ed25519"


def test_a_p256_pem_loads_as_an_es256_signing_key(
    tmp_path: Path, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    key = pem_key(write_private(tmp_path / "k.pem", p256_key), JWTAlgorithm.ES256)

    assert key.algorithm == "ES256"
    assert key.sign_key is not None
    assert key.jwk is not None
    assert (key.jwk["kty"], key.jwk["crv"]) == ("EC", "P-256")


@pytest.mark.parametrize("algorithm", [JWTAlgorithm.EDDSA, JWTAlgorithm.ES256])
def test_the_jwks_publishes_kid_alg_and_use_and_no_private_part(
    tmp_path: Path, algorithm: JWTAlgorithm
) -> None:
    private = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm is JWTAlgorithm.EDDSA
        else ec.generate_private_key(ec.SECP256R1())
    )
    key = pem_key(write_private(tmp_path / "k.pem", private), algorithm)

    jwks = KeySet(key).jwks()

    assert len(jwks["keys"]) == 1
    published = jwks["keys"][0]
    assert published["kid"] == key.kid
    assert published["alg"] == algorithm.value
    assert published["use"] == "sig"
    assert not PRIVATE_FIELDS & published.keys()


def test_the_jwks_includes_the_previous_key_during_a_rotation(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    previous_private = ed25519.Ed25519PrivateKey.generate()
    current = pem_key(write_private(tmp_path / "new.pem", ed25519_key), JWTAlgorithm.EDDSA)
    previous = pem_key(
        write_public(tmp_path / "old.pem", previous_private), JWTAlgorithm.EDDSA, sign=False
    )

    kids = {k["kid"] for k in KeySet(current, [previous]).jwks()["keys"]}

    assert kids == {current.kid, previous.kid}
    assert current.kid != previous.kid


def test_an_eddsa_kid_is_the_rfc_7638_thumbprint(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    raw = ed25519_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    expected = thumbprint({"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)})

    key = pem_key(write_private(tmp_path / "k.pem", ed25519_key), JWTAlgorithm.EDDSA)

    assert key.kid == expected


def test_an_es256_kid_is_the_rfc_7638_thumbprint(
    tmp_path: Path, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    numbers = p256_key.public_key().public_numbers()
    expected = thumbprint(
        {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    )

    key = pem_key(write_private(tmp_path / "k.pem", p256_key), JWTAlgorithm.ES256)

    assert key.kid == expected


def test_the_kid_matches_the_rfc_8037_test_vector(tmp_path: Path) -> None:
    # RFC 8037 Appendix A: the Ed25519 key of A.1 has the thumbprint of A.3.
    d = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    private = ed25519.Ed25519PrivateKey.from_private_bytes(d)

    key = pem_key(write_private(tmp_path / "k.pem", private), JWTAlgorithm.EDDSA)

    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert key.jwk is not None
    assert key.jwk["x"] == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"


def test_the_kid_depends_on_the_public_key_only(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    signing = pem_key(write_private(tmp_path / "priv.pem", ed25519_key), JWTAlgorithm.EDDSA)
    verify_only = pem_key(
        write_public(tmp_path / "pub.pem", ed25519_key), JWTAlgorithm.EDDSA, sign=False
    )

    assert signing.kid == verify_only.kid
    assert verify_only.sign_key is None


@pytest.mark.parametrize(
    ("make_key", "algorithm", "message"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), JWTAlgorithm.EDDSA, "Ed25519"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), JWTAlgorithm.ES256, "P-256"),
        (ed25519.Ed25519PrivateKey.generate, JWTAlgorithm.ES256, "P-256"),
        (
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            JWTAlgorithm.ES256,
            "P-256",
        ),
    ],
    ids=["p256-for-eddsa", "p384-for-es256", "ed25519-for-es256", "rsa-for-es256"],
)
def test_a_key_of_the_wrong_type_for_the_algorithm_is_refused(
    tmp_path: Path, make_key: Any, algorithm: JWTAlgorithm, message: str
) -> None:
    path = write_private(tmp_path / "k.pem", make_key())

    with pytest.raises(KeyConfigurationError, match=message):
        pem_key(path, algorithm)


def test_an_encrypted_pem_is_refused(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    path = write_private(
        tmp_path / "k.pem", ed25519_key, serialization.BestAvailableEncryption(b"passphrase")
    )

    with pytest.raises(KeyConfigurationError, match="not an unencrypted PEM private key"):
        pem_key(path, JWTAlgorithm.EDDSA)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key at all",
        b"-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n",
    ],
    ids=["empty", "text", "garbage-pem"],
)
@pytest.mark.parametrize("sign", [True, False], ids=["signing", "verify-only"])
def test_garbage_key_files_are_refused(tmp_path: Path, content: bytes, sign: bool) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(content)

    with pytest.raises(KeyConfigurationError):
        pem_key(path, JWTAlgorithm.EDDSA, sign=sign)


def test_a_public_key_cannot_be_the_current_signing_key(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    path = write_public(tmp_path / "pub.pem", ed25519_key)

    with pytest.raises(KeyConfigurationError):
        pem_key(path, JWTAlgorithm.EDDSA)


def test_a_verify_only_key_cannot_be_the_current_key_of_a_key_set(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    verify_only = pem_key(
        write_public(tmp_path / "pub.pem", ed25519_key), JWTAlgorithm.EDDSA, sign=False
    )

    with pytest.raises(KeyConfigurationError, match="must be able to sign"):
        KeySet(verify_only)


def test_a_missing_key_file_is_refused_with_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="cannot read key file"):
        pem_key(tmp_path / "absent.pem", JWTAlgorithm.EDDSA)


def test_a_key_configuration_error_never_quotes_the_key_material(
    tmp_path: Path, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    path = write_private(tmp_path / "k.pem", p256_key)
    pem = path.read_text()

    with pytest.raises(KeyConfigurationError) as info:
        pem_key(path, JWTAlgorithm.EDDSA)

    body = pem.splitlines()[1]
    assert body not in str(info.value)


# ----------------------------------------------------------------------------- HMAC


def test_an_hs256_key_set_publishes_an_empty_jwks() -> None:
    assert KeySet(hmac_key(TEST_SECRET.encode())).jwks() == {"keys": []}


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 31])
def test_an_hmac_secret_under_32_bytes_is_refused(secret: bytes) -> None:
    with pytest.raises(KeyConfigurationError, match="at least 32 bytes"):
        hmac_key(secret)


def test_an_hmac_secret_of_32_bytes_is_accepted() -> None:
    assert hmac_key(b"x" * 32).algorithm == "HS256"


def test_an_hmac_kid_names_the_key_without_revealing_it() -> None:
    secret = TEST_SECRET.encode()

    key = hmac_key(secret)

    assert key.kid == hmac_key(secret).kid
    assert key.kid != hmac_key(secret + b"!").kid
    assert TEST_SECRET not in key.kid
    assert hashlib.sha256(secret).hexdigest()[:16] not in key.kid


def test_a_previous_hmac_key_verifies_but_never_signs() -> None:
    key = hmac_key(TEST_SECRET.encode(), sign=False)

    assert key.sign_key is None
    assert key.verify_key == TEST_SECRET.encode()


def test_lookup_finds_only_configured_kids() -> None:
    current = hmac_key(TEST_SECRET.encode())
    previous = hmac_key(b"p" * 40, sign=False)
    keys = KeySet(current, [previous])

    assert keys.lookup(current.kid) is current
    assert keys.lookup(previous.kid) is previous
    assert keys.lookup("unknown") is None
    assert keys.lookup(None) is None
    assert keys.lookup(["not", "a", "string"]) is None
    assert keys.algorithms == frozenset({"HS256"})


# ----------------------------------------------------------------------------- from settings


def test_from_settings_with_a_weak_secret_is_refused(tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite://", tmp_path, secret_key="too-short")

    with pytest.raises(KeyConfigurationError, match="BASTION_SECRET_KEY"):
        KeySet.from_settings(settings)


def test_from_settings_without_a_secret_is_refused(tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite://", tmp_path, secret_key=None)

    with pytest.raises(KeyConfigurationError, match="BASTION_SECRET_KEY"):
        KeySet.from_settings(settings)


def test_from_settings_with_a_weak_previous_secret_is_refused(tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite://", tmp_path, previous_secret_key="short")

    with pytest.raises(KeyConfigurationError):
        KeySet.from_settings(settings)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_from_settings_with_an_asymmetric_algorithm_requires_a_private_key_file(
    tmp_path: Path, algorithm: str
) -> None:
    settings = make_settings("sqlite+aiosqlite://", tmp_path, jwt_algorithm=algorithm)

    with pytest.raises(KeyConfigurationError, match="BASTION_JWT_PRIVATE_KEY_FILE"):
        KeySet.from_settings(settings)


def test_from_settings_loads_the_private_and_previous_pem_keys(
    tmp_path: Path, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    current_path = write_private(tmp_path / "current.pem", ed25519_key)
    previous_path = write_public(tmp_path / "previous.pem", ed25519.Ed25519PrivateKey.generate())
    settings = make_settings(
        "sqlite+aiosqlite://",
        tmp_path,
        jwt_algorithm="EdDSA",
        jwt_private_key_file=current_path,
        jwt_previous_key_file=previous_path,
    )

    keys = KeySet.from_settings(settings)

    assert keys.current.kid == pem_key(current_path, JWTAlgorithm.EDDSA).kid
    assert keys.algorithms == frozenset({"EdDSA"})
    assert len(keys.jwks()["keys"]) == 2
    assert keys.lookup(pem_key(previous_path, JWTAlgorithm.EDDSA, sign=False).kid) is not None
