"""Signing keys, looked up by ``kid`` among configured keys only (SPEC §4.2, RFC 8725 §3.1).

A token's header never chooses its own key: ``jku``, ``jwk`` and ``x5u`` are ignored, an
unknown ``kid`` is refused, and each key is bound to exactly one algorithm, so a public key can
never be used as an HMAC secret (the classic key-confusion attack).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from bastion.settings import MIN_SECRET_BYTES, BastionSettings, JWTAlgorithm


class KeyConfigurationError(ValueError):
    """The configured key material cannot be used; the message names the setting."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    verify_key: Any
    """HMAC bytes, or a public key object."""
    sign_key: Any | None
    """``None`` for a previous key kept only to verify tokens issued before a rotation."""
    jwk: dict[str, str] | None
    """The public JWK to publish; ``None`` for HMAC keys, which are never published."""


class KeySet:
    """The current signing key plus the keys that still verify (previous generations)."""

    def __init__(self, current: SigningKey, previous: list[SigningKey] | None = None) -> None:
        if current.sign_key is None:
            raise KeyConfigurationError("the current key must be able to sign")
        self.current = current
        self._by_kid = {k.kid: k for k in [current, *(previous or [])]}
        self.algorithms = frozenset(k.algorithm for k in self._by_kid.values())

    def lookup(self, kid: object) -> SigningKey | None:
        return self._by_kid.get(kid) if isinstance(kid, str) else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """RFC 7517 key set of every public key that may verify a live token."""
        return {"keys": [k.jwk for k in self._by_kid.values() if k.jwk is not None]}

    @classmethod
    def from_settings(cls, settings: BastionSettings) -> KeySet:
        if settings.jwt_algorithm is JWTAlgorithm.HS256:
            if settings.secret_key is None:
                raise KeyConfigurationError("BASTION_SECRET_KEY is not set")
            current = hmac_key(settings.secret_key.get_secret_value().encode())
            previous = (
                [
                    hmac_key(
                        settings.previous_secret_key.get_secret_value().encode(),
                        sign=False,
                        setting="BASTION_PREVIOUS_SECRET_KEY",
                    )
                ]
                if settings.previous_secret_key
                else []
            )
            return cls(current, previous)
        if settings.jwt_private_key_file is None:
            raise KeyConfigurationError(
                f"BASTION_JWT_PRIVATE_KEY_FILE is required for {settings.jwt_algorithm.value}"
            )
        current = _named(
            "BASTION_JWT_PRIVATE_KEY_FILE",
            lambda path: pem_key(path, settings.jwt_algorithm),
            settings.jwt_private_key_file,
        )
        previous = (
            [
                _named(
                    "BASTION_JWT_PREVIOUS_KEY_FILE",
                    lambda path: pem_key(path, settings.jwt_algorithm, sign=False),
                    settings.jwt_previous_key_file,
                )
            ]
            if settings.jwt_previous_key_file
            else []
        )
        return cls(current, previous)


def _named(setting: str, load: Callable[[Path], SigningKey], path: Path) -> SigningKey:
    """``load(path)``, its refusal prefixed with the setting that named the file (SPEC §5)."""
    try:
        return load(path)
    except KeyConfigurationError as exc:
        raise KeyConfigurationError(f"{setting}: {exc}") from exc


def hmac_key(
    secret: bytes, *, sign: bool = True, setting: str = "BASTION_SECRET_KEY"
) -> SigningKey:
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyConfigurationError(
            f"{setting} is weak: HS256 needs at least {MIN_SECRET_BYTES} bytes"
        )
    # The kid is a digest of a digest: it names the key without helping anyone guess it.
    kid = "hs-" + hashlib.sha256(b"bastion-kid:" + hashlib.sha256(secret).digest()).hexdigest()[:16]
    return SigningKey(kid, "HS256", secret, secret if sign else None, None)


def pem_key(path: Path, algorithm: JWTAlgorithm, *, sign: bool = True) -> SigningKey:
    """Load a PEM private key (or, for a verify-only previous key, a public one)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigurationError(f"cannot read key file {path}: {exc.strerror}") from exc
    private: Any = None
    try:
        private = serialization.load_pem_private_key(data, password=None)
        public = private.public_key()
    except (ValueError, TypeError):
        if sign:
            raise KeyConfigurationError(f"{path} is not an unencrypted PEM private key") from None
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise KeyConfigurationError(f"{path} is not a PEM key") from exc
    _check_key_type(public, algorithm, path)
    jwk = _public_jwk(public, algorithm)
    kid = _thumbprint(jwk)
    jwk = {**jwk, "kid": kid, "alg": algorithm.value, "use": "sig"}
    return SigningKey(kid, algorithm.value, public, private if sign else None, jwk)


def _check_key_type(public: Any, algorithm: JWTAlgorithm, path: Path) -> None:
    if algorithm is JWTAlgorithm.EDDSA and not isinstance(public, ed25519.Ed25519PublicKey):
        raise KeyConfigurationError(f"{path} is not an Ed25519 key, which EdDSA needs")
    if algorithm is JWTAlgorithm.ES256 and not (
        isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    ):
        raise KeyConfigurationError(f"{path} is not a P-256 key, which ES256 needs")


def _public_jwk(public: Any, algorithm: JWTAlgorithm) -> dict[str, str]:
    if algorithm is JWTAlgorithm.EDDSA:
        return dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    return dict(ECAlgorithm.to_jwk(public, as_dict=True))


def _thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint: a kid that is a function of the public key alone."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
