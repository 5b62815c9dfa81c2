"""Username canonical form (SPEC §5): one account per name however a client spells it."""

from __future__ import annotations

import unicodedata

MIN_LENGTH = 3
MAX_LENGTH = 64


class InvalidUsername(ValueError):
    """The name cannot be an account name; the message says why, in a user's words."""


def normalize_username(raw: str) -> str:
    """NFKC then case-fold, so that ``Ａlice``, ``ALICE`` and ``alice`` are one account and a
    look-alike spelling cannot register a second one. Raises :class:`InvalidUsername`."""
    name = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidUsername("The username must not contain control or invisible characters.")
    if name != name.strip():
        raise InvalidUsername("The username must not start or end with white space.")
    if not MIN_LENGTH <= len(name) <= MAX_LENGTH:
        raise InvalidUsername(f"The username must be {MIN_LENGTH} to {MAX_LENGTH} characters long.")
    return name
