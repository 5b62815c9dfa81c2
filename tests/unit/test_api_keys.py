"""API key format, parsing, checksum and keyed hash (SPEC §4.4).

A key is ``bst_<id>_<secret><checksum>``: the fixed prefix lets secret scanners find leaked keys,
the checksum lets typos and truncations be refused without a database read, and only a keyed
hash of the key is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from collections.abc import Callable

import pytest

from bastion.api_keys import (
    BASE62,
    KEY_LENGTH,
    PREFIX,
    SECRET_LENGTH,
    hash_api_key,
    key_matches,
    key_prefix,
    new_api_key,
    new_key_id,
    parse_api_key,
)

KEY_SHAPE = re.compile(
    r"^bst_(?P<id>[0-9A-Za-z]{12})_(?P<secret>[0-9A-Za-z]{32})(?P<sum>[0-9A-Za-z]{6})$"
)
PEPPER = b"p" * 32
OTHER_PEPPER = b"q" * 32


def a_key() -> str:
    return new_api_key(new_key_id())


def other_char(c: str) -> str:
    """A base62 character different from ``c``."""
    return BASE62[(BASE62.index(c) + 1) % 62] if c in BASE62 else "A"


# ------------------------------------------------------------------------------- format


def test_a_new_key_has_the_documented_shape() -> None:
    key = a_key()
    assert KEY_SHAPE.fullmatch(key), key
    assert key.startswith("bst_")
    assert PREFIX == "bst_"
    assert len(key) == KEY_LENGTH == 55


def test_the_key_id_is_kept_in_the_key() -> None:
    key_id = new_key_id()
    key = new_api_key(key_id)
    match = KEY_SHAPE.fullmatch(key)
    assert match is not None
    assert match["id"] == key_id


def test_a_rotated_key_keeps_its_id_but_not_its_secret() -> None:
    key_id = new_key_id()
    first, second = new_api_key(key_id), new_api_key(key_id)
    assert first != second
    first_match, second_match = KEY_SHAPE.fullmatch(first), KEY_SHAPE.fullmatch(second)
    assert first_match is not None
    assert second_match is not None
    assert first_match["id"] == second_match["id"] == key_id
    assert first_match["secret"] != second_match["secret"]


def test_the_secret_has_at_least_128_bits() -> None:
    import math

    assert SECRET_LENGTH >= 22
    assert SECRET_LENGTH * math.log2(62) >= 128


def test_the_prefix_shown_in_lists_never_contains_the_secret() -> None:
    key_id = new_key_id()
    key = new_api_key(key_id)
    prefix = key_prefix(key_id)
    assert prefix == f"bst_{key_id}"
    assert key.startswith(prefix)
    match = KEY_SHAPE.fullmatch(key)
    assert match is not None
    assert match["secret"] not in prefix
    assert len(prefix) < len(key) - SECRET_LENGTH


def test_the_checksum_is_crc32_of_the_body_in_base62() -> None:
    """Scanners can verify a candidate offline; the module documents CRC-32 in base62."""
    key = a_key()
    body, checksum = key[:-6], key[-6:]
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    assert checksum == "".join(reversed(digits))


# -------------------------------------------------------------------------------- parse


def test_a_well_formed_key_parses_to_its_id() -> None:
    key_id = new_key_id()
    key = new_api_key(key_id)
    parsed = parse_api_key(key)
    assert parsed is not None
    assert parsed.key_id == key_id
    assert parsed.key == key


def test_every_single_character_substitution_is_refused() -> None:
    """CRC-32 catches every error confined to 32 bits, so no typo of one character passes."""
    key = a_key()
    for position, char in enumerate(key):
        for replacement in BASE62 + "_-":
            if replacement == char:
                continue
            typo = key[:position] + replacement + key[position + 1 :]
            assert parse_api_key(typo) is None, (position, replacement)


def test_every_swap_of_neighbouring_characters_is_refused() -> None:
    key = a_key()
    for position in range(len(key) - 1):
        a, b = key[position], key[position + 1]
        if a == b:
            continue
        swapped = key[:position] + b + a + key[position + 2 :]
        assert parse_api_key(swapped) is None, position


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1],
        lambda k: k[:20],
        lambda k: k + "A",
        lambda k: k + k,
        lambda k: " " + k,
        lambda k: k + "\n",
        lambda k: k[:-1] + " ",
        lambda k: "BST_" + k[4:],
        lambda k: "bsk_" + k[4:],
        lambda k: k.replace("_", "-"),
        lambda k: k.replace("bst_", "", 1),
        lambda k: k.upper(),
        lambda k: k[:10] + "é" + k[11:],
        lambda k: k[:10] + "\uff10" + k[11:],
        lambda k: k[:10] + "\x00" + k[11:],
        lambda k: "",
        lambda k: "bst_",
        lambda k: "bst_" + "A" * 10 * 1024,
        lambda k: "\ud800" * 55,
    ],
    ids=[
        "truncated-by-one",
        "truncated",
        "one-extra",
        "doubled",
        "leading-space",
        "trailing-newline",
        "last-char-space",
        "upper-prefix",
        "other-prefix",
        "dashes",
        "no-prefix",
        "upper-case",
        "non-ascii",
        "fullwidth-digit",
        "nul",
        "empty",
        "prefix-only",
        "ten-kib",
        "surrogates",
    ],
)
def test_malformed_keys_are_refused(mangle: Callable[[str], str]) -> None:
    key = a_key()
    candidate = mangle(key)
    assert candidate != key
    assert parse_api_key(candidate) is None


def test_a_key_with_a_fresh_checksum_but_another_prefix_is_refused() -> None:
    """The prefix is part of the format, not just of the checksummed body."""
    body = "xyz_" + new_key_id() + "_" + "A" * SECRET_LENGTH
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    assert parse_api_key(body + "".join(reversed(digits))) is None


# --------------------------------------------------------------------------------- hash


def test_the_hash_is_an_hmac_sha256_under_the_pepper() -> None:
    key = a_key()
    digest = hash_api_key(key, PEPPER)
    assert digest == hmac.new(PEPPER, key.encode(), hashlib.sha256).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest != hashlib.sha256(key.encode()).hexdigest(), "an unkeyed hash could be checked"


def test_the_hash_reveals_nothing_of_the_key() -> None:
    key = a_key()
    match = KEY_SHAPE.fullmatch(key)
    assert match is not None
    digest = hash_api_key(key, PEPPER)
    assert match["secret"] not in digest
    assert match["id"] not in digest


def test_the_hash_depends_on_key_and_pepper() -> None:
    key = a_key()
    assert hash_api_key(key, PEPPER) == hash_api_key(key, PEPPER)
    assert hash_api_key(key, PEPPER) != hash_api_key(key, OTHER_PEPPER)
    assert hash_api_key(key, PEPPER) != hash_api_key(a_key(), PEPPER)


def test_key_matches_only_the_same_key_under_the_same_pepper() -> None:
    key = a_key()
    stored = hash_api_key(key, PEPPER)
    assert key_matches(key, stored, PEPPER)
    assert not key_matches(key, stored, OTHER_PEPPER)
    assert not key_matches(a_key(), stored, PEPPER)
    assert not key_matches(key, stored.upper(), PEPPER)
    assert not key_matches(key, "", PEPPER)
    parsed = parse_api_key(key)
    assert parsed is not None
    rotated = new_api_key(parsed.key_id)
    assert not key_matches(rotated, stored, PEPPER)
