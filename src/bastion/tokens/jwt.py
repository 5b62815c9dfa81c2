"""Access tokens: JWTs in the RFC 9068 profile, issued and verified with every rule of SPEC §4.2.

Verification is strict on purpose: a pinned algorithm per key, every claim required, exact
``iss``/``aud``, ``typ: at+jwt`` (so an ID token or another JWT of ours cannot stand in for an
access token, RFC 8725 §3.11), at most 30 s of skew, and a size cap applied before any parsing.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from bastion.errors import InvalidToken
from bastion.tokens.keys import KeySet

MAX_TOKEN_BYTES = 8 * 1024
CLOCK_SKEW_SECONDS = 30
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope", "sid")
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_DIGITS = re.compile(r"[1-9][0-9]{0,9}")
"""A user id: ASCII digits only (``str.isdigit`` would accept ``²``), no leading zero."""
MAX_SUBJECT = 2**31 - 1
"""User ids are 32-bit on PostgreSQL; a larger ``sub`` names nobody."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified content of an access token."""

    subject: str
    scopes: frozenset[str]
    token_id: str
    family_id: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    claims: AccessClaims


class AccessTokenCodec:
    """Issues and verifies access tokens against one :class:`KeySet`.

    Verified tokens are kept in a small bounded cache keyed by the token string itself: a hit
    skips the signature check but still honours ``exp``; revocation is checked by the caller on
    every request, cached or not.
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        cache_size: int = 4096,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size
        self._options: jwt.types.Options = {
            "require": list(REQUIRED_CLAIMS),
            "verify_signature": True,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": True,
            "verify_iss": True,
            "strict_aud": True,
        }

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def issue(self, subject: str, scopes: frozenset[str], family_id: str) -> IssuedAccessToken:
        now = int(self._clock())
        claims = AccessClaims(
            subject=subject,
            scopes=scopes,
            token_id=secrets.token_urlsafe(16),
            family_id=family_id,
            issued_at=now,
            expires_at=now + self._ttl,
        )
        payload = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "exp": claims.expires_at,
            "iat": now,
            "nbf": now,
            "jti": claims.token_id,
            "scope": " ".join(sorted(scopes)),
            "sid": family_id,
        }
        key = self._keys.current
        assert key.sign_key is not None  # KeySet refuses a current key that cannot sign
        headers = {"typ": "at+jwt", "kid": key.kid}
        token = jwt.encode(payload, key.sign_key, algorithm=key.algorithm, headers=headers)
        return IssuedAccessToken(token, claims)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token, or :class:`InvalidToken` naming no secret."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + CLOCK_SKEW_SECONDS <= self._clock():
                self._cache.pop(token, None)
                raise InvalidToken("The access token has expired.")
            return cached
        claims = self._verify_uncached(token)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _verify_uncached(self, token: str) -> AccessClaims:
        if len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise InvalidToken("The access token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("The access token is malformed.") from None
        key = self._keys.lookup(header.get("kid"))
        if key is None or header.get("alg") != key.algorithm:
            raise InvalidToken("The access token was not signed by a key of this server.")
        if str(header.get("typ", "")).lower() not in ACCEPTED_TYPES:
            raise InvalidToken("The token is not an access token.")
        try:
            payload = jwt.decode(
                token,
                key.verify_key,
                algorithms=[key.algorithm],
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The access token has expired.") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("The access token is invalid.") from None
        return _claims_from_payload(payload)


def _claims_from_payload(payload: dict[str, object]) -> AccessClaims:
    """Types are checked here, after the signature: a well-signed token of odd shape (a numeric
    ``sub``, a list ``scope``) is still refused rather than half-trusted."""
    sub, scope, jti, sid = (payload.get(k) for k in ("sub", "scope", "jti", "sid"))
    iat, exp = payload.get("iat"), payload.get("exp")
    if not (
        isinstance(sub, str)
        and _DIGITS.fullmatch(sub) is not None
        and int(sub) <= MAX_SUBJECT
        and isinstance(scope, str)
        and isinstance(jti, str)
        and isinstance(sid, str)
        and isinstance(iat, int | float)
        and isinstance(exp, int | float)
    ):
        raise InvalidToken("The access token is invalid.")
    return AccessClaims(
        subject=sub,
        scopes=frozenset(scope.split()),
        token_id=jti,
        family_id=sid,
        issued_at=int(iat),
        expires_at=int(exp),
    )
