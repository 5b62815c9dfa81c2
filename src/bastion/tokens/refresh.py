"""Refresh tokens: opaque, random, stored only as a digest, rotated on every use (SPEC §4.2).

A token that is presented again after it was used means it was copied: the whole family (every
token descended from that login) is revoked, because we cannot tell the thief from the owner
(RFC 9700 §4.14.2).
"""

from __future__ import annotations

import hashlib
import secrets

REFRESH_TOKEN_BYTES = 32


def new_refresh_token() -> tuple[str, str]:
    """``(token, digest)``: the token for the client, the digest for the database."""
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    return token, refresh_token_digest(token)


def refresh_token_digest(token: str) -> str:
    """SHA-256 is enough here: the token has 256 bits of entropy, so no stretching is needed,
    and a plain digest lets the lookup be an index hit."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_family_id() -> str:
    return secrets.token_urlsafe(16)
