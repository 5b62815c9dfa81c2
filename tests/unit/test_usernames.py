"""Username canonical form (SPEC §5): NFKC, case-folded, 3–64 characters, nothing invisible."""

from __future__ import annotations

import pytest

from bastion.usernames import InvalidUsername, normalize_username


@pytest.mark.parametrize("spelling", ["alice", "ALICE", "Alice", "Ａlice", "ＡＬＩＣＥ"])
def test_every_spelling_of_a_name_normalizes_to_one_account(spelling: str) -> None:
    assert normalize_username(spelling) == "alice"


def test_compatibility_characters_are_folded_to_their_plain_form() -> None:
    # U+FB01 LATIN SMALL LIGATURE FI and U+2460 CIRCLED DIGIT ONE under NFKC.
    assert normalize_username("ﬁnn①") == "finn1"


def test_case_folding_is_full_unicode_folding_not_lowercasing() -> None:
    assert normalize_username("STRAßE") == normalize_username("strasse") == "strasse"


def test_normalization_is_idempotent() -> None:
    once = normalize_username("Ｂｏｂ_Smith")

    assert normalize_username(once) == once == "bob_smith"


@pytest.mark.parametrize("name", ["abc", "a" * 64, "bob", "jörg", "名前です"[:3]])
def test_names_of_3_to_64_characters_are_accepted(name: str) -> None:
    assert normalize_username(name) == name.casefold()


@pytest.mark.parametrize("name", ["", "a", "ab", "a" * 65, "A" * 100])
def test_names_shorter_than_3_or_longer_than_64_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidUsername, match="3 to 64 characters"):
        normalize_username(name)


def test_length_is_measured_after_normalization() -> None:
    # Two fullwidth letters stay two characters; the ligature "ﬀ" becomes "ff".
    with pytest.raises(InvalidUsername):
        normalize_username("Ａb")
    assert normalize_username("ﬀa") == "ffa"


@pytest.mark.parametrize(
    "name",
    [
        "ali\x00ce",
        "alice\x07",
        "ali\nce",
        "ali\tce",
        "ali\u200bce",  # zero-width space
        "ali\u200dce",  # zero-width joiner
        "\u202ealice",  # right-to-left override
        "ali\ufeffce",  # byte-order mark
        "ali\x7fce",  # DEL
    ],
    ids=["nul", "bell", "newline", "tab", "zwsp", "zwj", "rtl-override", "bom", "del"],
)
def test_control_and_invisible_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidUsername, match="control or invisible"):
        normalize_username(name)


@pytest.mark.parametrize("name", [" alice", "alice ", " alice ", "\u3000alice", "alice\u00a0"])
def test_surrounding_white_space_is_refused_not_stripped(name: str) -> None:
    with pytest.raises(InvalidUsername, match="white space"):
        normalize_username(name)


def test_the_refusal_message_does_not_echo_the_name() -> None:
    with pytest.raises(InvalidUsername) as info:
        normalize_username("evil\x00name")

    assert "evil" not in str(info.value)


def test_invalid_username_is_a_value_error() -> None:
    assert issubclass(InvalidUsername, ValueError)
