"""API key format, hashing and constant-time checking (SPEC §4.4).

A key reads ``bst_<id>_<secret><checksum>``:

- ``bst_`` lets secret scanners recognise a leaked Bastion key;
- ``id`` (12 base62 characters) finds the stored record with one indexed lookup;
- ``secret`` (32 base62 characters, ≈ 190 bits) is what makes the key unguessable;
- ``checksum`` (CRC-32 of everything before it, 6 base62 characters) refuses typos and truncated
  keys without touching the database, and lets scanners rule out false positives.

Only an HMAC-SHA256 of the whole key, keyed with a server-side pepper derived from
``BASTION_SECRET_KEY``, is stored: a stolen database alone cannot be used to check guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "bst_"
ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_SHAPE = re.compile(
    rf"bst_([0-9A-Za-z]{{{ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    key: str


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


_KEY_ID = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")


def is_key_id(candidate: str) -> bool:
    """Whether ``candidate`` could name a key; anything else is answered 404 without a lookup
    (a NUL or non-ASCII id would otherwise upset the database driver)."""
    return _KEY_ID.fullmatch(candidate) is not None


def new_key_id() -> str:
    return _random_base62(ID_LENGTH)


def new_api_key(key_id: str) -> str:
    """A fresh key for ``key_id`` (a new id at creation, the same id on rotation)."""
    body = f"{PREFIX}{key_id}_{_random_base62(SECRET_LENGTH)}"
    return body + _checksum(body)


def parse_api_key(candidate: str) -> ParsedKey | None:
    """The key's parts when it is well-formed and its checksum matches; ``None`` otherwise.

    Cheap and allocation-light on purpose: it runs on every request that carries a key, before
    any lookup, so junk (wrong prefix, 10 KiB strings, non-ASCII) costs almost nothing."""
    if len(candidate) != KEY_LENGTH:
        return None
    match = _KEY_SHAPE.fullmatch(candidate)
    if match is None:
        return None
    body = candidate[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(_checksum(body), match.group(3)):
        return None
    return ParsedKey(match.group(1), candidate)


def key_prefix(key_id: str) -> str:
    """What lists show so a person can tell keys apart: never any part of the secret."""
    return f"{PREFIX}{key_id}"


def hash_api_key(key: str, pepper: bytes) -> str:
    return hmac.new(pepper, key.encode("ascii"), hashlib.sha256).hexdigest()


def key_matches(key: str, stored_hash: str, pepper: bytes) -> bool:
    return hmac.compare_digest(hash_api_key(key, pepper), stored_hash)
